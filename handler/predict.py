"""Recall probabilities, and the days until recall falls to a target, from the loaded model.

The model is trained monotone (recall never rises with elapsed time), so the first day on which the
prediction reaches the target is found by bisection on delta_days, with the model itself as the
oracle: the answer is consistent with what the model predicts, to DAY_RESOLUTION.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from handler.model_store import LoadedModel
from handler.validation import ELAPSED

DAY_RESOLUTION = 0.001  # days (under 1.5 minutes)


def recall(model: LoadedModel, rows: np.ndarray) -> np.ndarray:
    import pandas as pd

    frame = pd.DataFrame(rows, columns=model.feature_names, dtype="float64")
    return np.asarray(model.estimator.predict_proba(frame)[:, 1], dtype="float64")


def days_until(model: LoadedModel, rows: np.ndarray, target: float, horizon_days: float) -> np.ndarray:
    """Smallest delta (to DAY_RESOLUTION) with predicted recall <= target; 0 if already there, capped at horizon."""
    column = model.feature_names.index(ELAPSED)
    probe = rows.copy()
    low = np.zeros(len(rows))
    high = np.full(len(rows), horizon_days)
    probe[:, column] = low
    already = recall(model, probe) <= target
    high[already] = 0.0
    while np.any(high - low > DAY_RESOLUTION):
        middle = (low + high) / 2
        probe[:, column] = middle
        below = recall(model, probe) <= target
        high = np.where(below, middle, high)
        low = np.where(below, low, middle)
    return high


def predictions(
    model: LoadedModel, rows: list[list[float]], target: float | None, horizon_days: float
) -> list[dict[str, Any]]:
    """Plain Python floats only: Lambda's JSON encoder cannot serialise numpy scalars."""
    matrix = np.asarray(rows, dtype="float64")
    probabilities = recall(model, matrix)
    days = days_until(model, matrix, target, horizon_days) if target is not None else None
    return [
        {
            "recall_probability": round(float(probabilities[i]), 6),
            "days_until_target": None if days is None else round(float(days[i]), 3),
        }
        for i in range(len(rows))
    ]
