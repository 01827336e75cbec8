"""The layer lock: resolved for the Lambda target with uv (resolve.py), checked against the .in files and PyPI
(check.py), moved forward by upgrade.py.
"""
