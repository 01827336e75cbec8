"""Pin match: check.py runs `python -m ci pins` and the precondition every model load passes, on what scan.py reads."""
