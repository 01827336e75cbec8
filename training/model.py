"""The estimator and how it is fitted: a gradient-boosted classifier of p(recall).

Recall is constrained to fall with elapsed time (the handler's search relies on it), and fitting uses one
OpenMP thread so the pickle's bytes do not depend on thread scheduling.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from training import schema
from training.errors import TrainingError

# The estimator classes a bundle may hold. Each is listed in handler/model_globals.txt (with the classes
# its fitted state pickles); the handler loads nothing else. Changing the estimator: add it here, then
# `python -m training` names the lines that file lacks.
ESTIMATOR_CLASSES: tuple[type, ...] = (HistGradientBoostingClassifier,)

HYPERPARAMETERS: dict[str, object] = {
    "learning_rate": 0.1,
    "max_iter": 150,
    "max_leaf_nodes": 15,
    "min_samples_leaf": 50,
    "l2_regularization": 1.0,
    "early_stopping": False,
}


def build_estimator(seed: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        **HYPERPARAMETERS,
        monotonic_cst={schema.DELTA: -1},
        random_state=seed,
    )


def split(frame: pd.DataFrame, test_fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out whole learners when the log names them (no learner leaks into both sides), else rows."""
    rng = np.random.default_rng(seed)
    if schema.LEARNER in frame.columns and frame[schema.LEARNER].nunique() >= 10:
        learners = np.sort(frame[schema.LEARNER].astype(str).unique())
        held_out = rng.permutation(learners)[: max(1, round(len(learners) * test_fraction))]
        is_test = frame[schema.LEARNER].astype(str).isin(set(held_out)).to_numpy()
    else:
        is_test = np.zeros(len(frame), dtype=bool)
        is_test[rng.permutation(len(frame))[: max(1, round(len(frame) * test_fraction))]] = True
    train, test = frame[~is_test].reset_index(drop=True), frame[is_test].reset_index(drop=True)
    for name, part in (("training", train), ("held-out", test)):
        if part[schema.LABEL].nunique() < 2:
            raise TrainingError(
                f"the {name} split has {len(part)} rows and only one outcome ({schema.LABEL} is never "
                f"{1 - int(part[schema.LABEL].iloc[0]) if len(part) else '0 or 1'})",
                "provide more reviews, with both recalled (1) and forgotten (0) outcomes",
            )
    return train, test


def fit(train: pd.DataFrame, seed: int) -> HistGradientBoostingClassifier:
    estimator = build_estimator(seed)
    with threadpool_limits(limits=1, user_api="openmp"):
        estimator.fit(train[schema.FEATURE_NAMES], train[schema.LABEL].to_numpy())
    return estimator


def predict_recall(estimator: HistGradientBoostingClassifier, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
    """p(recall) for each row: the probability of class 1."""
    return np.asarray(estimator.predict_proba(frame[schema.FEATURE_NAMES])[:, 1])
