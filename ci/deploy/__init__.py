"""Deployment: uploads, layer and function versions, the alias, rollback and bootstrap; the alias moves
only after the post-deploy check, so a failure anywhere leaves production where it was."""
