"""What the GitHub workflows need beyond the pipeline's own commands, as commands a person can run.

`python -m ci.github <subcommand>`: post the sticky size comment, turn reports into annotations,
write the job summary, gate on the verify jobs' results, expose configuration to a workflow step.
Standard library only (urllib for the REST API), so a job can run it before installing anything.
"""
