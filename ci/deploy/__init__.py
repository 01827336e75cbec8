"""Deployment: S3 uploads, the layer and function versions, the alias, rollback and bootstrap.

Every step is idempotent and nothing moves the alias until the new version has passed the
post-deploy check, so a failure anywhere leaves production where it was.
"""
