"""`python -m training`: the bundle and manifest contract, the quality gate, byte-identical artifacts."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import pickle
import re
import shutil
import subprocess
from pathlib import Path

import joblib
import numpy as np
import pytest
from joblib.numpy_pickle import NumpyUnpickler

from ci.paths import REPO_ROOT, BuildPaths
from tests.conftest import run_cli
from training import model, schema
from training.cli import main
from training.simulator import simulate

# Modules the Lambda layer provides; the pickle must not reference anything else (training/ is not deployed).
LAYER_MODULES = ("sklearn", "numpy", "scipy", "joblib", "pandas", "builtins", "copyreg", "_codecs", "collections")


def small_config(tmp_path: Path, **overrides: object) -> Path:
    """pipeline.toml with a small simulated log (fast) and any threshold overridden."""
    text = (REPO_ROOT / "pipeline.toml").read_text()
    # Small data (fast) gives noisier metrics: looser calibration/MAE thresholds unless a test sets them.
    values = {"reviews": 6000, "learners": 100, "items": 80, "max_ece": 0.1, "max_mae": 0.12, "max_history_error": 0.2}
    values.update(overrides)
    for key, value in values.items():
        text, count = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
        assert count == 1, key
    path = tmp_path / "pipeline.toml"
    path.write_text(text)
    return path


def train(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m training ARGS` in this process (its main(), as __main__ calls it): the scikit-learn stack is
    imported once per worker instead of once per run (~2 CPU-s). test_same_seed_gives_byte_identical_artifact
    runs the real command in a process of its own."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(["python", "-m", "training", *args], code, out.getvalue(), err.getvalue())


def test_trained_model_follows_the_contract(trained_model: BuildPaths) -> None:
    manifest = json.loads(trained_model.model_manifest.read_text())
    data = trained_model.model.read_bytes()
    assert manifest["artifact"] == "model.joblib"
    assert manifest["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["versions"]["scikit-learn"] == "1.3.2"
    assert set(manifest["versions"]) == {"python", "scikit-learn", "numpy", "scipy", "joblib", "pandas"}
    assert manifest["feature_names"] == schema.FEATURE_NAMES
    assert re.fullmatch(r"[0-9a-f]{64}", manifest["training_data_sha256"])
    metrics = manifest["metrics"]
    assert set(metrics) == {"log_loss", "baseline_log_loss", "roc_auc", "mae_true_p", "ece", "max_history_error"}
    assert metrics["log_loss"] < 0.85 * metrics["baseline_log_loss"]
    assert metrics["roc_auc"] >= 0.7 and metrics["mae_true_p"] <= 0.08 and metrics["ece"] <= 0.05
    assert metrics["max_history_error"] <= 0.05
    # the shape the pull request's model report reads
    assert manifest["checks"] == {"monotonic": {"passed": True, "histories": 200, "violations": 0}}

    bundle = joblib.load(trained_model.model)
    assert set(bundle) == {"sklearn_model", "feature_names", "metadata"}
    assert bundle["feature_names"] == schema.FEATURE_NAMES
    assert bundle["metadata"]["training_data_sha256"] == manifest["training_data_sha256"]
    assert len(data) < 2_000_000  # modest: loads fast in the init phase


def test_pickle_references_only_layer_modules(trained_model: BuildPaths) -> None:
    referenced: set[str] = set()

    class Recording(NumpyUnpickler):
        def find_class(self, module: str, name: str) -> object:
            referenced.add(module)
            return super().find_class(module, name)

    with trained_model.model.open("rb") as handle:
        Recording(str(trained_model.model), handle, ensure_native_byte_order=True).load()
    assert referenced, "the recording unpickler saw no class references"
    assert all(module.split(".")[0] in LAYER_MODULES for module in referenced), sorted(referenced)


def test_model_tracks_the_true_recall_probability(trained_model: BuildPaths) -> None:
    bundle = joblib.load(trained_model.model)
    fresh = simulate(99, learners=200, items=100, reviews=5000)  # a seed the model never saw
    predicted = bundle["sklearn_model"].predict_proba(fresh[bundle["feature_names"]])[:, 1]
    assert float(np.mean(np.abs(predicted - fresh[schema.TRUE_P]))) < 0.05


def test_same_seed_gives_byte_identical_artifact(trained_model: BuildPaths, tmp_path: Path) -> None:
    """A second process, default settings: the same bytes as the session's model."""
    run_cli("-m", "training", "--out-dir", str(tmp_path / "again"))
    assert (tmp_path / "again" / "model.joblib").read_bytes() == trained_model.model.read_bytes()
    assert (tmp_path / "again" / "model.json").read_bytes() == trained_model.model_manifest.read_bytes()


def test_another_seed_gives_another_artifact(tmp_path: Path) -> None:
    config = small_config(tmp_path)
    assert train("--config", str(config), "--out-dir", str(tmp_path / "a"), "--seed", "1").returncode == 0
    assert train("--config", str(config), "--out-dir", str(tmp_path / "b"), "--seed", "2").returncode == 0
    first = json.loads((tmp_path / "a" / "model.json").read_text())
    second = json.loads((tmp_path / "b" / "model.json").read_text())
    assert first["seed"] == 1 and second["seed"] == 2
    assert first["sha256"] != second["sha256"]
    assert first["training_data_sha256"] != second["training_data_sha256"]


def test_quality_gate_names_metric_value_and_threshold_and_writes_nothing(tmp_path: Path) -> None:
    config = small_config(tmp_path, min_roc_auc=0.99, max_ece=0.0001)
    out = tmp_path / "model"
    result = train("--config", str(config), "--out-dir", str(out))
    assert result.returncode == 1
    assert "quality gate failed, nothing written" in result.stderr
    assert re.search(r"roc_auc = 0\.\d+ must be at least training\.min_roc_auc = 0\.99", result.stderr)
    assert re.search(r"ece = 0\.\d+ must be at most training\.max_ece = 0\.0001", result.stderr)
    assert not out.exists()


def test_quality_gate_refuses_pure_noise(tmp_path: Path) -> None:
    """Outcomes unrelated to the history: no better than the base rate, so nothing is shipped."""
    log = simulate(5, learners=100, items=80, reviews=6000)
    log[schema.LABEL] = np.random.default_rng(0).integers(0, 2, len(log))
    log = log.drop(columns=[schema.TRUE_P])
    data = tmp_path / "noise.csv"
    log.to_csv(data, index=False)
    out = tmp_path / "model"
    out.mkdir()
    (out / "model.joblib").write_bytes(b"previous model")
    result = train("--config", str(small_config(tmp_path)), "--data", str(data), "--out-dir", str(out))
    assert result.returncode == 1
    assert re.search(r"log_loss [\d.]+ is [\d.]+ of the constant baseline's [\d.]+: must be below", result.stderr)
    assert (out / "model.joblib").read_bytes() == b"previous model"
    assert sorted(p.name for p in out.iterdir()) == ["model.joblib"]  # no temporaries left behind


def test_trains_from_a_csv_with_true_probabilities(tmp_path: Path) -> None:
    data = tmp_path / "log.csv"
    simulate(6, learners=100, items=80, reviews=6000).to_csv(data, index=False)
    out = tmp_path / "model"
    result = train("--config", str(small_config(tmp_path)), "--data", str(data), "--out-dir", str(out))
    assert result.returncode == 0 and "wrote" in result.stdout
    manifest = json.loads((out / "model.json").read_text())
    assert manifest["metrics"]["mae_true_p"] is not None
    bundle = joblib.load(out / "model.joblib")
    assert bundle["metadata"]["data"] == {"kind": "csv", "file": "log.csv"}


def test_a_bad_csv_fails_before_training(tmp_path: Path) -> None:
    data = tmp_path / "log.csv"
    data.write_text("delta_days,history_seen\n1,2\n")
    result = train("--data", str(data), "--out-dir", str(tmp_path / "m"))
    assert result.returncode == 1
    assert "error:" in result.stderr and "column 'history_correct' is missing" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "m").exists()


def test_bundle_bytes_are_a_plain_joblib_dict(trained_model: BuildPaths) -> None:
    """The handler can load it from bytes (S3) as well as from a path."""
    bundle = joblib.load(io.BytesIO(trained_model.model.read_bytes()))
    assert isinstance(bundle, dict)
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(b"not a pickle")


def test_a_real_log_without_true_probabilities_skips_only_the_truth_gates(tmp_path: Path) -> None:
    data = tmp_path / "log.csv"
    simulate(6, learners=100, items=80, reviews=6000).drop(columns=[schema.TRUE_P]).to_csv(data, index=False)
    out = tmp_path / "model"
    config = small_config(tmp_path, max_mae=0.0, max_history_error=0.0)
    result = train("--config", str(config), "--data", str(data), "--out-dir", str(out))
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "model.json").read_text())["metrics"]
    assert metrics["mae_true_p"] is None and metrics["max_history_error"] is None


def test_the_model_is_judged_against_the_true_recall_at_the_reference_histories(tmp_path: Path) -> None:
    """Finding 2: the simulator's truth is training's question; a model off it by more than the bound is refused."""
    out = tmp_path / "model"
    result = train("--config", str(small_config(tmp_path, max_history_error=0.001)), "--out-dir", str(out))
    assert result.returncode == 1
    line = next(line for line in result.stderr.splitlines() if "max_history_error" in line)
    assert re.search(
        r"max_history_error = 0\.\d+ must be at most training\.max_history_error = 0\.001 \(at \w+: model 0\.\d+, "
        r"true recall 0\.\d+; training/simulator\.py REFERENCE_HISTORIES\)",
        line,
    ), line
    assert not out.exists()


def random_forest(seed: int) -> object:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=40, min_samples_leaf=30, random_state=seed, n_jobs=1)


def test_an_estimator_whose_recall_rises_with_elapsed_time_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 3: a RandomForest passes the metrics but breaks the search days_until_target relies on."""
    monkeypatch.setattr(model, "build_estimator", random_forest)
    out = tmp_path / "model"
    config = small_config(tmp_path, max_log_loss_ratio=0.99, min_roc_auc=0.5, max_ece=1, max_mae=1, max_history_error=1)
    result = train("--config", str(config), "--out-dir", str(out))
    assert result.returncode == 1
    assert re.search(
        r"RandomForestClassifier's recall rises with delta_days on \d+ of 200 histories \(e\.g\. history_seen=",
        result.stderr,
    ), result.stderr
    assert (
        "use an estimator whose recall cannot rise with delta_days, e.g. HistGradientBoostingClassifier with "
        "monotonic_cst={'delta_days': -1}" in result.stderr
    )
    assert not out.exists()


def test_the_events_must_fit_the_model(tmp_path: Path) -> None:
    """An event the handler answers otherwise than it expects is named at training, not at smoke."""
    events = tmp_path / "events"
    events.mkdir()
    shutil.copy(REPO_ROOT / "tests" / "events" / "direct-single.json", events)
    wrong = json.loads((events / "direct-single.json").read_text())
    wrong["expect"] = {"status": 400, "error_field": "features"}
    (events / "wrong.json").write_text(json.dumps(wrong))
    out = tmp_path / "model"
    result = train("--config", str(small_config(tmp_path, events=f'"{events}"')), "--out-dir", str(out))
    assert result.returncode == 1
    assert (
        "committed event wrong: the handler answers it, with this model, not as it expects: status 200, expected 400"
        in (result.stderr)
    )
    assert not out.exists()


@pytest.mark.parametrize("seed", ["-1", "4294967296", "1e3"])
def test_a_seed_flag_numpy_cannot_take_is_a_usage_error_before_training(tmp_path: Path, seed: str) -> None:
    ran = run_cli("-m", "training", "--seed", seed, "--out-dir", str(tmp_path / "model"), check=False)
    assert ran.returncode == 2 and "--seed" in ran.stderr and "Traceback" not in ran.stderr, ran.stderr
    assert not (tmp_path / "model").exists()
