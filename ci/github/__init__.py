"""The workflow steps that talk to GitHub (`python -m ci.github <subcommand>`): standard library only (urllib
for the REST API), so a job can run them before installing anything."""
