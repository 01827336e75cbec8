"""The quality gate: a model that is not clearly better than guessing the base rate, that strays from the
true recall at a reference history (simulated data), or that breaks the handler's contract is not shipped."""

from __future__ import annotations

from collections.abc import Callable

from ci.config_sections import TrainingConfig as TrainingSettings
from handler.contract import MONOTONIC_FIX, MonotonicCheck
from training.errors import TrainingError


def failures(
    metrics: dict[str, float | None],
    settings: TrainingSettings,
    history_errors: dict[str, dict[str, float]] | None = None,
) -> list[str]:
    """One line per missed threshold, naming metric, value and threshold; empty when the model passes."""
    missed: list[str] = []
    ratio = float(metrics["log_loss"] or 0.0) / float(metrics["baseline_log_loss"] or 1.0)
    if ratio >= settings.max_log_loss_ratio:
        missed.append(
            f"log_loss {metrics['log_loss']} is {ratio:.3f} of the constant baseline's "
            f"{metrics['baseline_log_loss']}: must be below training.max_log_loss_ratio = {settings.max_log_loss_ratio}"
        )
    checks: list[tuple[str, str, Callable[[float, float], bool], str]] = [
        ("roc_auc", "min_roc_auc", lambda value, limit: value >= limit, "at least"),
        ("mae_true_p", "max_mae", lambda value, limit: value <= limit, "at most"),
        ("ece", "max_ece", lambda value, limit: value <= limit, "at most"),
        ("max_history_error", "max_history_error", lambda value, limit: value <= limit, "at most"),
    ]
    for metric, setting, passes, word in checks:
        value, limit = metrics.get(metric), getattr(settings, setting)
        if value is not None and not passes(value, limit):
            missed.append(
                f"{metric} = {value} must be {word} training.{setting} = {limit}{worst(metric, history_errors)}"
            )
    return missed


def worst(metric: str, history_errors: dict[str, dict[str, float]] | None) -> str:
    """Where the largest reference-history error is, for max_history_error's line."""
    if metric != "max_history_error" or not history_errors:
        return ""
    name, found = max(history_errors.items(), key=lambda item: item[1]["error"])
    return (
        f" (at {name}: model {found['model']}, true recall {found['true']}; training/simulator.py REFERENCE_HISTORIES)"
    )


def enforce(
    metrics: dict[str, float | None],
    settings: TrainingSettings,
    monotonic: MonotonicCheck,
    estimator: str,
    history_errors: dict[str, dict[str, float]] | None = None,
) -> None:
    missed = failures(metrics, settings, history_errors)
    if not monotonic.passed:
        missed.append(f"{monotonic.problem(estimator)}; {MONOTONIC_FIX}")
    if missed:
        raise TrainingError(
            "quality gate failed, nothing written:\n    " + "\n    ".join(missed),
            "check the estimator (training/model.py), the training data (enough reviews, real signal) or the "
            "thresholds in [training] of pipeline.toml",
        )
