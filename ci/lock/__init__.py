"""The locks: resolved for the Lambda target (resolve.py), checked (check.py), moved forward (upgrade.py)."""
