"""The workflow steps that talk to GitHub (`python -m ci.github`): standard library only (urllib for the API)."""
