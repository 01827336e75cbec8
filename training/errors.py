"""The error training raises for people to read: a PipelineError, printed as `error:` and `fix:` lines."""

from __future__ import annotations

from ci.errors import PipelineError


class TrainingError(PipelineError):
    """The data, the estimator or the quality gate refused the model (exit 1); config errors stay ConfigError (2)."""
