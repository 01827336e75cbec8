"""Pin match: prove the model was pickled by exactly the library versions that will unpickle it.

checks.py runs the three checks (lock_check, model_check, installed_check) on what scan.py and evidence.py
read; render.py prints them.
"""
