"""Recall probabilities, and the days until recall falls to a target, from the loaded model.

Recall never rises with elapsed time (handler/contract.py), so days_until_target is a search on delta_days
with the model itself as the oracle, to DAY_RESOLUTION.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from handler.contract import ELAPSED

if TYPE_CHECKING:
    from handler.model_store import LoadedModel

DAY_RESOLUTION = 0.001  # days (under 1.5 minutes)
MAX_PROBES = 15  # deltas per instance per search round, for small batches
ROWS_PER_CALL = 150  # below this a predict call costs about its fixed overhead
MAX_ROUNDS = 200


def recall(model: LoadedModel, rows: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    import pandas as pd

    frame = pd.DataFrame(rows, columns=model.feature_names, dtype="float64")
    return np.asarray(model.estimator.predict_proba(frame)[:, 1], dtype="float64")


def warm_up(model: LoadedModel) -> None:
    """One throw-away prediction, so the first request does not pay for first-call imports and caches."""
    recall(model, np.zeros((1, len(model.feature_names))))


def days_until(
    model: LoadedModel, rows: np.ndarray[Any, Any], target: float, horizon_days: float
) -> np.ndarray[Any, Any]:
    """Smallest delta (to DAY_RESOLUTION) with predicted recall <= target; 0 if already there, capped at horizon.

    A (k+1)-ary search: each round asks the model about k evenly spaced deltas per instance in one
    call, keeping the interval where recall crosses the target. For one instance, k = 15 takes six
    rounds instead of bisection's 22 (the fixed cost of a predict call dominates); large batches use
    k = 1, plain bisection, where the cost is per row.
    """
    probes = max(1, min(MAX_PROBES, ROWS_PER_CALL // max(len(rows), 1)))
    column = model.feature_names.index(ELAPSED)
    count = len(rows)
    low = np.zeros(count)
    high = np.full(count, horizon_days)
    start = rows.copy()
    start[:, column] = 0.0
    high[recall(model, start) <= target] = 0.0
    fractions = np.arange(1, probes + 1) / (probes + 1)
    for _ in range(MAX_ROUNDS):  # bounded even if a huge horizon defeats float resolution
        if not np.any(high - low > DAY_RESOLUTION):
            break
        points = low[:, None] + (high - low)[:, None] * fractions[None, :]  # (count, probes)
        probe = np.repeat(rows, probes, axis=0)
        probe[:, column] = points.ravel()
        below = (recall(model, probe) <= target).reshape(count, probes)
        crossed = below.any(axis=1)
        first = below.argmax(axis=1)  # recall only falls with time: the first probe at or below target
        new_high = np.where(crossed, points[np.arange(count), first], high)
        previous = np.where(first > 0, points[np.arange(count), np.maximum(first - 1, 0)], low)
        new_low = np.where(crossed, previous, points[:, -1])
        low, high = new_low, new_high
    return high


def round_up(days: float) -> float:
    """Three decimals, rounded up: the model's recall at the returned day is still at or below the target."""
    rounded = math.ceil(days * 1000) / 1000
    return rounded if rounded >= days else rounded + 0.001


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
            "days_until_target": None if days is None else round_up(float(days[i])),
        }
        for i in range(len(rows))
    ]
