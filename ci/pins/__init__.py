"""Pin match: prove the model was pickled by exactly the library versions that will unpickle it.

locks.py reads the pip-tools locks, container.py opens joblib's (possibly compressed) file,
scan.py walks its pickle opcodes without executing them, policy.py says which references are
allowed, probe.py asks the runtime whether referenced classes exist, checks.py turns all of it
into three verdicts and render.py prints them.
"""
