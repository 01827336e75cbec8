"""Pin match: prove the model was pickled by exactly the library versions that will unpickle it.

check.py runs the checks of `python -m ci pins` on what scan.py reads; guard.py is the precondition every model
load passes.
"""
