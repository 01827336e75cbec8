"""The layer build (ci.layer.build.build_layer): the lock's wheels for the Lambda target, pruned, proven, zipped."""
