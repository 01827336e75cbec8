"""Smoke invocation: the built zips under AWS's runtime interface client, as Lambda runs them (harness.run_smoke)."""
