"""The handler's contract with the model (handler/contract.py), and answers that follow the model, not the events.

Finding 3: a model whose recall rises with elapsed time breaks days_until_target silently; the handler
refuses it at load and the training gate before it is written. Finding 2: changing the model changes
training's answers, and the runtime reproducing them is all smoke asks; no event is edited.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

from ci.paths import REPO_ROOT, BuildPaths
from ci.smoke.events import TrainingAnswers, judge, load_events, read_answers
from handler import contract, events, predict, responses, settings
from handler.errors import ModelLoadError
from handler.model_store import LoadedModel, from_bundle
from handler.request import answer
from training import schema
from training.simulator import simulate

LIMITS = settings.Limits(settings.DEFAULT_MAX_BATCH, settings.DEFAULT_MAX_BODY_BYTES, settings.DEFAULT_HORIZON_DAYS)


@pytest.fixture(scope="module")
def reviews() -> Any:
    return simulate(3, learners=100, items=80, reviews=6000)


def fitted(estimator: Any, reviews: Any, columns: list[str] | None = None) -> Any:
    return estimator.fit(reviews[columns or schema.FEATURE_NAMES], reviews[schema.LABEL])


def bundle(estimator: Any, names: list[str] | None = None) -> dict[str, Any]:
    return {"sklearn_model": estimator, "feature_names": names or list(schema.FEATURE_NAMES), "metadata": {}}


def test_training_and_the_handler_share_one_statement_of_the_features() -> None:
    assert schema.FEATURE_NAMES == contract.FEATURE_NAMES
    assert set(schema.COUNT_COLUMNS) == contract.COUNTS and contract.ELAPSED == schema.DELTA
    assert {schema.DIFFICULTY} == contract.UNIT_INTERVAL


def test_the_grid_of_histories_is_valid_and_the_load_check_is_the_gates_start() -> None:
    grid = contract.histories(contract.GATE_HISTORIES)
    names = contract.FEATURE_NAMES
    seen, correct, wrong = (grid[:, names.index(name)] for name in (contract.SEEN, contract.CORRECT, contract.WRONG))
    assert np.all(correct + wrong <= seen) and np.all(grid[:, names.index(contract.DIFFICULTY)] <= 1)
    assert np.array_equal(contract.histories(contract.LOAD_HISTORIES), grid[: contract.LOAD_HISTORIES])
    assert len({tuple(row) for row in grid}) == contract.GATE_HISTORIES


def test_the_handler_refuses_a_model_whose_recall_rises_with_elapsed_time(reviews: Any) -> None:
    """Finding 3: on main a RandomForest loads and answers days_until_target wrongly, without an error."""
    forest = fitted(RandomForestClassifier(n_estimators=40, min_samples_leaf=30, random_state=1, n_jobs=1), reviews)
    with pytest.raises(ModelLoadError) as caught:
        from_bundle(bundle(forest), "0" * 64, "model.joblib")
    message = str(caught.value)
    assert message.startswith("model.joblib: RandomForestClassifier's recall rises with delta_days on ")
    assert " of 8 histories (e.g. history_seen=" in message
    assert "HistGradientBoostingClassifier with monotonic_cst={'delta_days': -1}" in message
    assert "retrain (`python -m training`)" in message


def test_the_gate_counts_the_violations_a_random_forest_makes(reviews: Any) -> None:
    forest = fitted(RandomForestClassifier(n_estimators=40, min_samples_leaf=30, random_state=1, n_jobs=1), reviews)
    model = LoadedModel(forest, list(schema.FEATURE_NAMES), "", "1.3.2")
    check = contract.check_monotonic(lambda rows: predict.recall(model, rows), contract.GATE_HISTORIES)
    assert not check.passed and 0 < check.violations <= contract.GATE_HISTORIES
    assert check.to_json() == {"passed": False, "histories": 200, "violations": check.violations}


def test_a_monotone_estimator_passes_on_every_history(reviews: Any) -> None:
    boosted = HistGradientBoostingClassifier(max_iter=30, monotonic_cst={contract.ELAPSED: -1}, random_state=1)
    loaded = from_bundle(bundle(fitted(boosted, reviews)), "0" * 64, "model.joblib")
    check = contract.check_monotonic(lambda rows: predict.recall(loaded, rows), contract.GATE_HISTORIES)
    assert check.to_json() == {"passed": True, "histories": 200, "violations": 0}


def test_features_out_of_the_contracts_order_are_refused(reviews: Any) -> None:
    boosted = HistGradientBoostingClassifier(max_iter=5, random_state=1)
    reordered = [*schema.FEATURE_NAMES[1:], schema.FEATURE_NAMES[0]]
    with pytest.raises(ModelLoadError, match=r"are not the handler's \['delta_days', 'history_seen'"):
        from_bundle(bundle(fitted(boosted, reviews, reordered), reordered), "0" * 64, "model.joblib")
    with pytest.raises(ModelLoadError, match=r"the estimator was fitted on columns \['history_seen'"):
        from_bundle(bundle(fitted(boosted, reviews, reordered)), "0" * 64, "model.joblib")


def retrained(trained_model: BuildPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """The default training with other hyperparameters (HistGradientBoostingClassifier, still monotone)."""
    from training import model
    from training.cli import main

    monkeypatch.setitem(model.HYPERPARAMETERS, "max_iter", 80)
    monkeypatch.setitem(model.HYPERPARAMETERS, "learning_rate", 0.15)
    out = tmp_path / "retrained"
    assert main(["--out-dir", str(out)]) == 0
    return out / "model.joblib", out / "model.json"


def test_other_hyperparameters_need_no_event_edited(
    trained_model: BuildPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 2: on main, a changed model fails smoke against numbers committed in the events."""
    artifact, manifest = retrained(trained_model, tmp_path, monkeypatch)
    data = json.loads(manifest.read_text())
    answers = read_answers(manifest, data["sha256"])
    loaded = from_bundle(joblib.load(io.BytesIO(artifact.read_bytes())), data["sha256"], str(artifact))
    before = json.loads(trained_model.model_manifest.read_text())["sha256"]
    old: TrainingAnswers = read_answers(trained_model.model_manifest, before)
    assert data["sha256"] != before
    differs = 0
    for event in load_events(REPO_ROOT / "tests" / "events"):
        found = answer(loaded, event.event, LIMITS)
        response = responses.shape(found.body, found.status, found.source != events.DIRECT)
        assert judge(event, response, answers) is None, event.name
        differs += judge(event, response, old) is not None
    assert differs >= 5  # the old model's answers are not this model's: only training's own answers fit
