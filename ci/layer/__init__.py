"""The layer build: the lock's wheels for the Lambda target, pruned by named rules, proven, zipped.

`python -m ci build` runs ci.layer.build.build_layer; its steps are listed there.
"""
