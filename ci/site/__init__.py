"""Facts about a site tree (a directory on sys.path, or a layer holding python/): files and sizes (tree.py),
which distribution owns each file (owners.py), and the named pruning rules (rules.py).
"""
