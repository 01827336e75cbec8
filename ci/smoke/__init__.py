"""Smoke invocation: run the built zips under AWS's runtime interface client, as Lambda runs them.

harness.run_smoke is the one entry point (used by `python -m ci smoke`, the tests and deploy's
post-deploy check); the other modules are its steps: the pinned runtime directory, the Lambda-like
layout, the local Runtime API, the bootstrap that runs inside the function's process, the events
and their judging, and the import trace.
"""
