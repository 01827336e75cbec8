"""Facts about a site tree (a directory on sys.path, or a layer holding python/) that the layer build,
the ABI check, the budget and the smoke run all read: its files and sizes (tree.py) and which
distribution put each file there (owners.py), and the named pruning rules that classify its files
(rules.py; pipeline.toml's [build] prune names them). It imports none of them, so none depends on another
through it.
"""
