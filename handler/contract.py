"""What the handler needs from any model, stated once: the features, their order and kinds, and monotone recall.

`days_until_target` assumes recall never rises with elapsed time, so it is checked where the model is made
and where it is loaded (docs/model.md#the-handlers-contract-with-the-model); imports nothing but numpy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

ELAPSED_KIND, COUNT_KIND, UNIT_KIND = "elapsed days", "whole count", "fraction in [0, 1]"


@dataclass(frozen=True)
class Feature:
    name: str
    kind: str  # one of the *_KIND above: what validation accepts and what the grid of histories varies


ELAPSED = "delta_days"  # days since the last review: the feature the target-recall search moves along
SEEN, CORRECT, WRONG = "history_seen", "history_correct", "history_wrong"  # correct + wrong <= seen
DIFFICULTY = "item_difficulty"
FEATURES: tuple[Feature, ...] = (
    Feature(ELAPSED, ELAPSED_KIND),
    Feature(SEEN, COUNT_KIND),
    Feature(CORRECT, COUNT_KIND),
    Feature(WRONG, COUNT_KIND),
    Feature(DIFFICULTY, UNIT_KIND),
)
FEATURE_NAMES: list[str] = [feature.name for feature in FEATURES]
COUNTS = {feature.name for feature in FEATURES if feature.kind == COUNT_KIND}
UNIT_INTERVAL = {feature.name for feature in FEATURES if feature.kind == UNIT_KIND}

GATE_HISTORIES = 200  # the training gate's grid
LOAD_HISTORIES = 8  # the handler's check at load (cold start): one predict call of 8 x len(ELAPSED_GRID) rows
ELAPSED_GRID = np.concatenate([[0.0], np.geomspace(1 / 1440, 3650.0, 23)])  # a minute to ten years
GRID_SEED = 20240  # the histories are the same everywhere, so the handler's 8 are the gate's first 8
MAX_COUNT = 40
MONOTONIC_FIX = (
    f"use an estimator whose recall cannot rise with {ELAPSED}, e.g. HistGradientBoostingClassifier with "
    f"monotonic_cst={{'{ELAPSED}': -1}} (training/model.py)"
)


@dataclass(frozen=True)
class MonotonicCheck:
    histories: int
    violations: int  # histories whose recall rises somewhere along ELAPSED_GRID
    example: str | None  # the first violation, in words

    @property
    def passed(self) -> bool:
        return self.violations == 0

    def to_json(self) -> dict[str, Any]:
        """The shape model.json records under checks.monotonic (read by the pull request's model report)."""
        return {"passed": self.passed, "histories": self.histories, "violations": self.violations}

    def problem(self, estimator: str) -> str:
        return (
            f"{estimator}'s recall rises with {ELAPSED} on {self.violations} of {self.histories} histories "
            f"(e.g. {self.example}): days_until_target assumes it never does"
        )


def histories(count: int) -> np.ndarray[Any, Any]:
    """`count` learner histories (rows in FEATURE_NAMES order, ELAPSED left 0), the same on every machine."""
    rng = np.random.default_rng(GRID_SEED)
    rows = np.zeros((count, len(FEATURES)))
    for row in rows:
        for column, feature in enumerate(FEATURES):
            if feature.kind == COUNT_KIND:
                row[column] = rng.integers(0, MAX_COUNT + 1)
            elif feature.kind == UNIT_KIND:
                row[column] = round(float(rng.random()), 3)
        seen, correct, wrong = (FEATURE_NAMES.index(name) for name in (SEEN, CORRECT, WRONG))
        row[seen] = max(row[seen], row[correct] + row[wrong])
    return rows


def check_monotonic(recall: Callable[[np.ndarray[Any, Any]], np.ndarray[Any, Any]], count: int) -> MonotonicCheck:
    """Recall along ELAPSED_GRID for `count` histories, in one call of `recall` (rows -> probabilities)."""
    base = histories(count)
    column = FEATURE_NAMES.index(ELAPSED)
    rows = np.repeat(base, len(ELAPSED_GRID), axis=0)
    rows[:, column] = np.tile(ELAPSED_GRID, count)
    curves = np.asarray(recall(rows), dtype="float64").reshape(count, len(ELAPSED_GRID))
    rises = np.diff(curves, axis=1) > 0.0  # float addition is monotone: a monotone model shows no rise at all
    bad = np.flatnonzero(rises.any(axis=1))
    example = None
    if bad.size:
        history, step = int(bad[0]), int(np.argmax(rises[bad[0]]))
        shown = ", ".join(f"{name}={base[history, i]:g}" for i, name in enumerate(FEATURE_NAMES) if i != column)
        example = (
            f"{shown}: {curves[history, step]:.6f} at {ELAPSED_GRID[step]:.4g} days, "
            f"{curves[history, step + 1]:.6f} at {ELAPSED_GRID[step + 1]:.4g}"
        )
    return MonotonicCheck(count, int(bad.size), example)


def feature_problem(feature_names: list[str], estimator: Any) -> str | None:
    """Why the bundle's features or the estimator's inputs are not the contract's, or None."""
    if feature_names != FEATURE_NAMES:
        return f"feature_names {feature_names} are not the handler's {FEATURE_NAMES} (handler/contract.py), in order"
    fitted = getattr(estimator, "feature_names_in_", None)
    if fitted is not None and [str(name) for name in fitted] != FEATURE_NAMES:
        return f"the estimator was fitted on columns {[str(n) for n in fitted]}, not {FEATURE_NAMES}"
    count = getattr(estimator, "n_features_in_", None)
    if count is not None and count != len(FEATURE_NAMES):
        return f"the estimator takes {count} features, the contract has {len(FEATURE_NAMES)}: {FEATURE_NAMES}"
    return None
