"""The layer build (`python -m ci build` runs ci.layer.build.build_layer): the lock's wheels for the Lambda
target, pruned by named rules, proven, zipped."""
