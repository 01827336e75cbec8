"""The layer lock: resolved for the Lambda target with uv, checked against requirements.in and PyPI.

files.py reads pip-tools lock and .in files, resolve.py runs uv, index.py fetches PyPI's JSON
simple API (cached), tags.py says which wheels the target accepts, check.py judges the locks,
problems.py holds the typed problems users read.
"""
