"""The pipeline's commands: lock, build, abi, budget, pins, smoke, deploy, rollback, bootstrap, bench."""
