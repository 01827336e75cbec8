"""The layer build: the lock's wheels for the Lambda target, pruned by named rules, proven, zipped.

`python -m ci build` runs ci.layer.build.build_layer, which reads top-down as its steps:
fetch (wheels.py) -> install (install.py) -> pristine verdict (verify.py) -> prune (ci/site/rules.py,
strip.py) -> verify (verify.py) + abi (ci.abi) -> trace (trace.py) -> bytecode (bytecode.py)
-> prove (trace.py again, on the final tree) -> zip (archive.py) -> build/reports/build.json.
"""
