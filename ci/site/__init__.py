"""A site tree (on sys.path, or a layer holding python/): files (tree.py), owners (owners.py), pruning (rules.py)."""
