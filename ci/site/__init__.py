"""A site tree (on sys.path, or a layer holding python/): owners (owners.py), files and pruning (rules.py)."""
