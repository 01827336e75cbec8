"""Smoke invocation: run the built zips under AWS's runtime interface client, as Lambda runs them.

harness.run_smoke is the one entry point (`python -m ci smoke`, the tests, deploy's post-deploy check).
"""
