"""The size budget: what Lambda counts against its unzipped limit, and where the bytes go.

compute.py turns the zips and the build's report into one `Budget` (model.py); the terminal
table, budget.json and budget.md are three small renderers of that one structure.
"""
