"""Pin match: prove the model was pickled by exactly the library versions that will unpickle it.

locks.py reads the pip-tools locks; container.py opens joblib's (possibly compressed) file;
scan.py walks its pickle opcodes without executing them; policy.py says which references are
allowed; probe.py asks an environment whether referenced classes exist. evidence.py gathers
what the artifact and its manifest say; lock_check.py, model_check.py and installed_check.py
are the three checks (result.py holds their rows and findings); checks.py runs them and
render.py prints them.
"""
