"""A review log from half-life regression (Settles & Meeder, ACL 2016), deterministic per seed.

Recall p = 2^(-Δ/h), h = 2^(θ·x) with x = (sqrt(1+seen), sqrt(1+correct), sqrt(1+wrong), difficulty, 1);
each review's outcome feeds the next one's history, as in a real spaced-repetition log.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from training import schema

# Learner histories (delta_days, seen, correct, wrong, difficulty) at which the training gate compares the
# model with the true recall (training.max_history_error): typical ones, from a first review to a long gap.
REFERENCE_HISTORIES: dict[str, tuple[float, int, int, int, float]] = {
    "reviewed_twice": (1.0, 2, 1, 0, 0.3),
    "new_hard_item": (0.5, 3, 0, 2, 0.7),
    "middling": (2.0, 4, 2, 1, 0.5),
    "practised": (3.0, 6, 4, 1, 0.4),
    "well_practised": (5.0, 8, 5, 2, 0.6),
    "long_gap": (10.0, 12, 9, 2, 0.5),
}


@dataclass(frozen=True)
class HLRParameters:
    """θ of the half-life h = 2^(θ·x) days, and the review habits of simulated learners."""

    theta_seen: float = 0.5  # per sqrt(1 + history_seen): any exposure helps a little
    theta_correct: float = 1.5  # per sqrt(1 + history_correct): successful recall strengthens memory
    theta_wrong: float = -1.0  # per sqrt(1 + history_wrong): lapses mark a weak memory
    theta_difficulty: float = -2.5  # per unit of item_difficulty in [0, 1]
    theta_bias: float = 1.0
    difficulty_beta: tuple[float, float] = (2.0, 2.0)  # item difficulty ~ Beta(a, b)
    gap_median_days: float = 1.0  # a typical learner's first review gap
    learner_gap_sigma: float = 0.8  # spread of learners' habits (lognormal sigma)
    gap_growth: float = 2.0  # after a recall the next gap grows by this factor; a lapse resets it (spacing)
    gap_noise_sigma: float = 1.0  # day-to-day irregularity (lognormal sigma)
    min_gap_days: float = 5.0 / 1440.0  # five minutes
    max_gap_days: float = 180.0
    reviews_per_pair_mean: float = 8.0  # 1 + Poisson(mean - 1) reviews per (learner, item)
    max_reviews_per_pair: int = 40
    extra_exposure_rate: float = 0.3  # ungraded exposures (lessons, reading) between reviews ~ Poisson


def log2_half_life(
    seen: np.ndarray[Any, Any] | float,
    correct: np.ndarray[Any, Any] | float,
    wrong: np.ndarray[Any, Any] | float,
    difficulty: np.ndarray[Any, Any] | float,
    params: HLRParameters,
) -> np.ndarray[Any, Any]:
    """θ·x: the base-2 logarithm of the half-life in days."""
    return np.asarray(
        params.theta_seen * np.sqrt(1.0 + np.asarray(seen, dtype=float))
        + params.theta_correct * np.sqrt(1.0 + np.asarray(correct, dtype=float))
        + params.theta_wrong * np.sqrt(1.0 + np.asarray(wrong, dtype=float))
        + params.theta_difficulty * np.asarray(difficulty, dtype=float)
        + params.theta_bias
    )


def recall_probability(
    delta_days: np.ndarray[Any, Any] | float,
    seen: np.ndarray[Any, Any] | float,
    correct: np.ndarray[Any, Any] | float,
    wrong: np.ndarray[Any, Any] | float,
    difficulty: np.ndarray[Any, Any] | float,
    params: HLRParameters | None = None,
) -> np.ndarray[Any, Any]:
    """The simulator's true p = 2^(-Δ/h); used for the MAE metric and the error at the reference histories."""
    params = params or HLRParameters()
    half_life = np.exp2(log2_half_life(seen, correct, wrong, difficulty, params))
    return np.asarray(np.exp2(-np.asarray(delta_days, dtype=float) / half_life))


def simulate(
    seed: int,
    learners: int,
    items: int,
    reviews: int,
    params: HLRParameters | None = None,
) -> pd.DataFrame:
    """`reviews` rows of review log, with the columns of `training.schema` plus the true p."""
    if min(learners, items, reviews) <= 0:
        raise ValueError("learners, items and reviews must be positive")
    params = params or HLRParameters()
    rng = np.random.default_rng(seed)
    difficulty = rng.beta(*params.difficulty_beta, size=items)
    learner_gap = params.gap_median_days * rng.lognormal(0.0, params.learner_gap_sigma, size=learners)

    columns: dict[str, list[float | int]] = {
        name: [] for name in (schema.LEARNER, schema.ITEM, *schema.FEATURE_NAMES, schema.LABEL, schema.TRUE_P)
    }
    produced = 0
    while produced < reviews:
        learner = int(rng.integers(learners))
        item = int(rng.integers(items))
        n = min(1 + int(rng.poisson(params.reviews_per_pair_mean - 1.0)), params.max_reviews_per_pair)
        n = min(n, reviews - produced)
        noise = rng.lognormal(0.0, params.gap_noise_sigma, size=n)
        extra = rng.poisson(params.extra_exposure_rate, size=n)
        draws = rng.random(size=n)
        seen, correct, wrong = 1, 0, 0  # the introducing lesson
        spacing = 1.0
        for k in range(n):
            seen += int(extra[k])
            gap = learner_gap[learner] * spacing * noise[k]
            delta = float(min(max(gap, params.min_gap_days), params.max_gap_days))
            log2_h = params.theta_seen * math.sqrt(1 + seen) + params.theta_correct * math.sqrt(1 + correct)
            log2_h += params.theta_wrong * math.sqrt(1 + wrong) + params.theta_difficulty * difficulty[item]
            log2_h += params.theta_bias
            p = 2.0 ** (-delta / 2.0**log2_h)
            recalled = int(draws[k] < p)
            for name, value in (
                (schema.LEARNER, learner),
                (schema.ITEM, item),
                (schema.DELTA, round(delta, 6)),
                (schema.SEEN, seen),
                (schema.CORRECT, correct),
                (schema.WRONG, wrong),
                (schema.DIFFICULTY, round(float(difficulty[item]), 6)),
                (schema.LABEL, recalled),
                (schema.TRUE_P, 0.0),
            ):
                columns[name].append(value)
            seen += 1
            correct += recalled
            wrong += 1 - recalled
            spacing = spacing * params.gap_growth if recalled else 1.0
        produced += n

    frame = pd.DataFrame(columns)
    for name in (schema.LEARNER, schema.ITEM, *schema.COUNT_COLUMNS, schema.LABEL):
        frame[name] = frame[name].astype("int64")
    # The true p of the rounded features, so the CSV round trip reproduces it exactly.
    frame[schema.TRUE_P] = recall_probability(
        frame[schema.DELTA].to_numpy(),
        frame[schema.SEEN].to_numpy(),
        frame[schema.CORRECT].to_numpy(),
        frame[schema.WRONG].to_numpy(),
        frame[schema.DIFFICULTY].to_numpy(),
        params,
    )
    return frame


def describe(params: HLRParameters) -> dict[str, object]:
    """The parameters as plain data, for the bundle's metadata."""
    return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(params).items()}
