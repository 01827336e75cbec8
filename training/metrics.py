"""Held-out quality of the model: log loss against a constant baseline, ROC AUC, MAE, calibration; and its
error at the reference histories, against the simulator's true recall."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import log_loss, roc_auc_score

ECE_BINS = 10


def evaluate(
    labels: np.ndarray[Any, Any],
    predicted: np.ndarray[Any, Any],
    train_base_rate: float,
    true_p: np.ndarray[Any, Any] | None,
) -> dict[str, float | None]:
    """The manifest's metrics; mae_true_p is None when the data has no true probability (real logs)."""
    baseline = np.full(len(labels), train_base_rate)
    return {
        "log_loss": round(float(log_loss(labels, predicted, labels=[0, 1])), 6),
        "baseline_log_loss": round(float(log_loss(labels, baseline, labels=[0, 1])), 6),
        "roc_auc": round(float(roc_auc_score(labels, predicted)), 6),
        "mae_true_p": None if true_p is None else round(float(np.mean(np.abs(predicted - true_p))), 6),
        "ece": round(expected_calibration_error(labels, predicted), 6),
    }


def expected_calibration_error(
    labels: np.ndarray[Any, Any], predicted: np.ndarray[Any, Any], bins: int = ECE_BINS
) -> float:
    """Σ_b (n_b / n) · |observed recall rate − mean prediction| over equal-width probability bins."""
    index = np.minimum((predicted * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += mask.mean() * abs(labels[mask].mean() - predicted[mask].mean())
    return float(total)


def history_errors(predicted: dict[str, float], true: dict[str, float]) -> dict[str, dict[str, float]]:
    """Per reference history: the model's recall, the true recall and the absolute error, rounded for the manifest."""
    return {
        name: {
            "model": round(predicted[name], 6),
            "true": round(true[name], 6),
            "error": round(abs(predicted[name] - true[name]), 6),
        }
        for name in predicted
    }
