"""The quality gate: a model that is not clearly better than guessing the base rate is not shipped."""

from __future__ import annotations

from training.errors import TrainingError
from training.settings import TrainingSettings


def failures(metrics: dict[str, float | None], settings: TrainingSettings) -> list[str]:
    """One line per missed threshold, naming metric, value and threshold; empty when the model passes."""
    missed: list[str] = []
    ratio = float(metrics["log_loss"] or 0.0) / float(metrics["baseline_log_loss"] or 1.0)
    if ratio >= settings.max_log_loss_ratio:
        missed.append(
            f"log_loss {metrics['log_loss']} is {ratio:.3f} of the constant baseline's "
            f"{metrics['baseline_log_loss']}: must be below training.max_log_loss_ratio = {settings.max_log_loss_ratio}"
        )
    checks = [
        ("roc_auc", "min_roc_auc", lambda value, limit: value >= limit, "at least"),
        ("mae_true_p", "max_mae", lambda value, limit: value <= limit, "at most"),
        ("ece", "max_ece", lambda value, limit: value <= limit, "at most"),
    ]
    for metric, setting, passes, word in checks:
        value, limit = metrics.get(metric), getattr(settings, setting)
        if value is not None and not passes(value, limit):
            missed.append(f"{metric} = {value} must be {word} training.{setting} = {limit}")
    return missed


def enforce(metrics: dict[str, float | None], settings: TrainingSettings) -> None:
    missed = failures(metrics, settings)
    if missed:
        raise TrainingError(
            "quality gate failed, nothing written:\n    " + "\n    ".join(missed),
            "check the training data (enough reviews, real signal) or the thresholds in [training] of pipeline.toml",
        )
