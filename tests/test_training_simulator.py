"""The HLR simulator: the documented formula, realistic histories, and the same log for the same seed."""

from __future__ import annotations

import numpy as np
import pandas.testing as pdt
import pytest

from training import schema
from training.simulator import HLRParameters, log2_half_life, recall_probability, simulate


def test_same_seed_same_log_and_another_seed_another_log() -> None:
    first = simulate(7, learners=30, items=20, reviews=2000)
    pdt.assert_frame_equal(first, simulate(7, learners=30, items=20, reviews=2000))
    assert not first.equals(simulate(8, learners=30, items=20, reviews=2000))


def test_recall_is_two_to_the_minus_delta_over_half_life() -> None:
    params = HLRParameters()
    seen, correct, wrong, difficulty = 6, 4, 1, 0.4
    theta_x = (
        params.theta_seen * np.sqrt(7)
        + params.theta_correct * np.sqrt(5)
        + params.theta_wrong * np.sqrt(2)
        + params.theta_difficulty * difficulty
        + params.theta_bias
    )
    assert log2_half_life(seen, correct, wrong, difficulty, params) == pytest.approx(theta_x)
    half_life = 2**theta_x
    # After exactly one half-life, recall is one half; at zero elapsed time it is certain.
    assert recall_probability(half_life, seen, correct, wrong, difficulty) == pytest.approx(0.5)
    assert recall_probability(0.0, seen, correct, wrong, difficulty) == pytest.approx(1.0)
    assert recall_probability(3.0, seen, correct, wrong, difficulty) > recall_probability(
        9.0, seen, correct, wrong, difficulty
    )


def test_log_has_the_schema_and_consistent_histories() -> None:
    log = simulate(3, learners=50, items=40, reviews=5000)
    assert len(log) == 5000
    assert {*schema.REQUIRED_COLUMNS, schema.TRUE_P} <= set(log.columns)
    assert (log[schema.CORRECT] + log[schema.WRONG] <= log[schema.SEEN]).all()
    assert log[schema.DELTA].min() > 0 and log[schema.DELTA].max() <= HLRParameters().max_gap_days
    assert set(log[schema.LABEL].unique()) == {0, 1}
    # Outcomes are Bernoulli draws from the true p: their rates agree.
    assert abs(log[schema.LABEL].mean() - log[schema.TRUE_P].mean()) < 0.03
    expected = recall_probability(*(log[name].to_numpy() for name in schema.FEATURE_NAMES))
    np.testing.assert_allclose(log[schema.TRUE_P].to_numpy(), expected)
