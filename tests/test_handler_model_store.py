"""Loading the model: integrity before unpickling, bundle errors, S3, init-phase loading, import isolation."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import joblib
import pytest

from ci.paths import REPO_ROOT, BuildPaths
from handler.errors import ModelLoadError
from handler.model_store import get_model, load
from handler.settings import ModelSource


class CreatesMarker:
    """Unpickling this runs os.system: exactly what a tampered model file could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def write_pickle(path: Path, value: Any) -> str:
    buffer = io.BytesIO()
    joblib.dump(value, buffer)
    path.write_bytes(buffer.getvalue())
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def test_the_marker_pickle_really_runs_code_when_unpickled(tmp_path: Path) -> None:
    """Control for the refusal tests below: joblib.load of this file executes code."""
    marker = tmp_path / "unpickled"
    write_pickle(tmp_path / "evil.joblib", {"sklearn_model": CreatesMarker(marker)})
    joblib.load(tmp_path / "evil.joblib")
    assert marker.exists()


def test_a_matching_hash_does_not_make_code_loadable(tmp_path: Path) -> None:
    """The digest says the file is the one deployed, not that it is data: the allow-list refuses the call."""
    marker = tmp_path / "unpickled"
    digest = write_pickle(tmp_path / "evil.joblib", {"sklearn_model": CreatesMarker(marker)})
    with pytest.raises(ModelLoadError) as caught:
        load(ModelSource(path=str(tmp_path / "evil.joblib"), s3_uri=None, sha256=digest))
    assert "references posix.system, which is not in handler/model_globals.txt" in str(caught.value)
    assert not marker.exists()


def test_hash_mismatch_is_refused_without_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    write_pickle(tmp_path / "evil.joblib", {"sklearn_model": CreatesMarker(marker)})
    expected = "0" * 64
    with pytest.raises(ModelLoadError) as caught:
        load(ModelSource(path=str(tmp_path / "evil.joblib"), s3_uri=None, sha256=expected))
    assert f"MODEL_SHA256 is {expected}" in str(caught.value)
    assert "was not unpickled" in str(caught.value)
    assert not marker.exists()


def test_matching_hash_loads_and_names_the_model(trained_model: BuildPaths) -> None:
    manifest = json.loads(trained_model.model_manifest.read_text())
    model = load(ModelSource(path=str(trained_model.model), s3_uri=None, sha256=manifest["sha256"]))
    assert model.label == {"sha256": manifest["sha256"][:12], "sklearn_version": "1.3.2"}
    assert model.feature_names == manifest["feature_names"]


def test_bundle_without_sklearn_model_lists_the_keys_found(tmp_path: Path, trained_model: BuildPaths) -> None:
    estimator = joblib.load(trained_model.model)["sklearn_model"]
    digest = write_pickle(tmp_path / "m.joblib", {"model": estimator, "feature_names": ["delta_days"], "meta": {}})
    with pytest.raises(ModelLoadError) as caught:
        load(ModelSource(path=str(tmp_path / "m.joblib"), s3_uri=None, sha256=digest))
    message = str(caught.value)
    assert "without 'sklearn_model'" in message
    assert "keys found: 'model', 'feature_names', 'meta'" in message


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (["not", "a", "dict"], "holds a list, not a bundle dict"),
        ({"sklearn_model": "x", "feature_names": "delta_days"}, "feature_names must be a non-empty list"),
        ({"sklearn_model": "x", "feature_names": ["history_seen"]}, "lack 'delta_days'"),
        ({"sklearn_model": "x", "feature_names": ["delta_days"]}, "has no predict_proba"),
    ],
)
def test_malformed_bundles_are_refused(tmp_path: Path, content: Any, words: str) -> None:
    write_pickle(tmp_path / "m.joblib", content)
    with pytest.raises(ModelLoadError, match=words):
        load(ModelSource(path=str(tmp_path / "m.joblib"), s3_uri=None, sha256=None))


def test_unreadable_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "junk.joblib").write_bytes(b"definitely not a pickle")
    with pytest.raises(ModelLoadError, match="not a readable joblib model bundle"):
        load(ModelSource(path=str(tmp_path / "junk.joblib"), s3_uri=None, sha256=None))
    with pytest.raises(ModelLoadError, match="cannot read MODEL_PATH"):
        load(ModelSource(path=str(tmp_path / "absent.joblib"), s3_uri=None, sha256=None))
    with pytest.raises(ModelLoadError, match="set MODEL_PATH"):
        load(ModelSource(path=None, s3_uri=None, sha256=None))
    with pytest.raises(ModelLoadError, match="not of the form s3://bucket/key"):
        load(ModelSource(path=None, s3_uri="https://bucket/key", sha256=None))


def test_a_model_pickled_by_another_sklearn_is_refused(
    tmp_path: Path, trained_model: BuildPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sklearn.base

    bundle = joblib.load(trained_model.model)
    monkeypatch.setattr(sklearn.base, "__version__", "1.2.2")  # what __getstate__ records in the pickle
    write_pickle(tmp_path / "old.joblib", bundle)
    monkeypatch.undo()
    with pytest.raises(ModelLoadError, match=r"pickled by scikit-learn 1\.2\.2 but this runtime has 1\.3\.2"):
        load(ModelSource(path=str(tmp_path / "old.joblib"), s3_uri=None, sha256=None))


def test_model_is_loaded_once_per_container(trained_model: BuildPaths, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_PATH", str(trained_model.model))
    monkeypatch.delenv("MODEL_SHA256", raising=False)
    monkeypatch.delenv("MODEL_S3_URI", raising=False)
    assert get_model() is get_model()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_model_from_s3_with_integrity(
    trained_model: BuildPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MODEL_S3_URI through real boto3 against moto's S3 server on 127.0.0.1."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        for name, value in {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            monkeypatch.setenv(name, value)
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="models")
        data = trained_model.model.read_bytes()
        s3.put_object(Bucket="models", Key="v1/model.joblib", Body=data)
        marker = tmp_path / "unpickled"
        buffer = io.BytesIO()
        pickle.dump({"sklearn_model": CreatesMarker(marker)}, buffer)
        s3.put_object(Bucket="models", Key="evil/model.joblib", Body=buffer.getvalue())

        digest = hashlib.sha256(data).hexdigest()
        model = load(ModelSource(path=None, s3_uri="s3://models/v1/model.joblib", sha256=digest))
        assert model.sha256 == digest
        with pytest.raises(ModelLoadError, match="was not unpickled"):
            load(ModelSource(path=None, s3_uri="s3://models/evil/model.joblib", sha256=digest))
        assert not marker.exists()
        with pytest.raises(ModelLoadError, match="cannot fetch MODEL_S3_URI=s3://models/absent"):
            load(ModelSource(path=None, s3_uri="s3://models/absent", sha256=None))
    finally:
        server.stop()


ISOLATION_PROBE = """
import json, os, sys, time
started = time.perf_counter()
import handler.app
imported = time.perf_counter() - started
from handler import model_store
loaded_at_import = bool(model_store._LOADED)
response = handler.app.lambda_handler({"features": {"delta_days": 1, "history_seen": 2, "history_correct": 1,
    "history_wrong": 0, "item_difficulty": 0.3}}, None)
tops = sorted({name.split(".")[0] for name in sys.modules})
print(json.dumps({"loaded_at_import": loaded_at_import, "modules": tops, "response": response}))
"""


def run_probe(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """handler/ alone on the path, as in function.zip: training/ and ci/ are not importable there."""
    base = {k: v for k, v in os.environ.items() if k not in ("_HANDLER", "MODEL_SHA256", "MODEL_S3_URI", "PYTHONPATH")}
    return subprocess.run(
        [sys.executable, "-c", ISOLATION_PROBE],
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture()
def function_dir(tmp_path: Path) -> Path:
    from ci.layer.sources import handler_files

    (tmp_path / "handler").mkdir()
    for source in handler_files(REPO_ROOT / "handler"):  # what function.zip holds: *.py and model_globals.txt
        (tmp_path / "handler" / source.name).write_text(source.read_text())
    return tmp_path


def test_handler_runs_alone_and_loads_lazily_outside_lambda(trained_model: BuildPaths, function_dir: Path) -> None:
    result = run_probe({"MODEL_PATH": str(trained_model.model)}, function_dir)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["loaded_at_import"] is False
    assert report["response"]["predictions"][0]["recall_probability"] > 0.5
    assert not {"ci", "training", "boto3", "botocore"} & set(report["modules"])


def test_under_lambda_the_model_loads_in_the_init_phase(trained_model: BuildPaths, function_dir: Path) -> None:
    manifest = json.loads(trained_model.model_manifest.read_text())
    env = {
        "_HANDLER": "handler.app.lambda_handler",
        "MODEL_PATH": str(trained_model.model),
        "MODEL_SHA256": manifest["sha256"],
    }
    result = run_probe(env, function_dir)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["loaded_at_import"] is True


def test_under_lambda_a_tampered_model_fails_the_init_phase(trained_model: BuildPaths, function_dir: Path) -> None:
    env = {"_HANDLER": "handler.app.lambda_handler", "MODEL_PATH": str(trained_model.model), "MODEL_SHA256": "ab" * 32}
    result = run_probe(env, function_dir)
    assert result.returncode != 0
    assert "ModelLoadError" in result.stderr and "was not unpickled" in result.stderr


def test_a_broken_deployment_is_a_logged_function_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from handler.app import lambda_handler

    monkeypatch.setenv("MODEL_PATH", str(tmp_path / "absent.joblib"))
    monkeypatch.delenv("MODEL_SHA256", raising=False)
    with pytest.raises(ModelLoadError, match="cannot read MODEL_PATH"):
        lambda_handler({"features": {}}, None)
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["level"] == "error" and "cannot read MODEL_PATH" in line["error"]
