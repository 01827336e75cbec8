"""The layer build: the lock's wheels for the Lambda target, pruned by named rules, proven, zipped.

`python -m ci build` runs ci.layer.build.build_layer, which reads top-down as its steps:
fetch (wheels.py) -> install (install.py) -> prune (rules.py, strip.py) -> verify (verify.py)
-> abi (ci.abi) -> bytecode (trace.py, bytecode.py) -> zip (archive.py) -> report.
"""
