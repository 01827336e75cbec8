"""A model `ci pins` refuses is never unpickled: build (its import trace), smoke, bench and the
post-deploy check stop before any process loads it, naming the scan's finding.

The model is a real pickle whose __reduce__ calls os.system to create a marker file; the
handlers here unpickle MODEL_PATH at import, as the real one does, so a missing guard shows
up as the marker on disk.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import pytest

from ci.arch.interpreter import target_python
from ci.errors import PipelineError
from ci.paths import REPO_ROOT, BuildPaths
from tests.config_fixtures import TARGET
from tests.conftest import run_cli
from tests.smoke_fixtures import function_zip, layer_zip, run_tiny, tiny_events

PYTHON = target_python(TARGET.runtime.python)
FINDING = "posix.system"  # what the scan names: os.system, as the unpickler imports it

LOADING_HANDLER = """
import os, pickle
with open(os.environ["MODEL_PATH"], "rb") as handle:
    MODEL = pickle.load(handle)

def lambda_handler(event, context):
    return {"predictions": [{"recall_probability": 0.5, "days_until_target": None}]}
"""


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def malicious_model(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(_Payload(marker)))
    return path


def test_the_payload_works_when_nothing_guards(tmp_path: Path) -> None:
    """The fixture is real: unpickling it does run the command."""
    marker = tmp_path / "ran"
    pickle.loads(malicious_model(tmp_path / "m.joblib", marker).read_bytes())
    assert marker.exists()


def test_smoke_refuses_before_the_function_starts(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    model = malicious_model(tmp_path / "model" / "model.joblib", marker)
    with pytest.raises(PipelineError, match=FINDING) as info:
        run_tiny(tmp_path, LOADING_HANDLER, model=model)
    assert "never load" in info.value.fix
    assert not marker.exists()


def test_smoke_command_fails_with_the_finding(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    model = malicious_model(tmp_path / "evil.joblib", marker)
    args = ["--layer", str(layer_zip(tmp_path)), "--function", str(function_zip(tmp_path, LOADING_HANDLER))]
    args += ["--model", str(model), "--events", str(tiny_events(tmp_path / "events"))]
    result = run_cli("-m", "ci", "--build-dir", str(tmp_path / "build"), "smoke", *args, check=False)
    assert result.returncode == 1
    assert FINDING in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()


def test_build_refuses_before_any_step(tmp_path: Path) -> None:
    paths = BuildPaths(build=tmp_path / "build", cache=REPO_ROOT / "build" / "cache")
    marker = tmp_path / "ran"
    malicious_model(paths.model, marker)
    result = run_cli("-m", "ci", "--build-dir", str(paths.build), "--cache-dir", str(paths.cache), "build", check=False)
    assert result.returncode == 1
    assert FINDING in result.stderr and "Traceback" not in result.stderr
    assert "fetch:" not in result.stdout  # refused first, not after minutes of work
    assert not marker.exists()


def test_the_import_trace_itself_refuses(tmp_path: Path) -> None:
    """trace_handler is the build's loader: it scans too, whoever calls it."""
    from ci.layer.verify import Runner, trace_handler

    site = tmp_path / "site"
    site.mkdir()
    function = tmp_path / "function"
    (function / "handler").mkdir(parents=True)
    (function / "handler" / "__init__.py").write_text("")
    (function / "handler" / "app.py").write_text(LOADING_HANDLER)
    marker = tmp_path / "ran"
    model = malicious_model(tmp_path / "model.joblib", marker)
    events = tiny_events(tmp_path / "events")
    with pytest.raises(PipelineError, match=FINDING):
        trace_handler(Runner(PYTHON), site, function, "handler.app.lambda_handler", events, model)
    assert not marker.exists()


def test_bench_cold_start_refuses(tmp_path: Path) -> None:
    from ci.bench import measure_cold_start

    function = tmp_path / "task"
    (function / "handler").mkdir(parents=True)
    (function / "handler" / "__init__.py").write_text("")
    (function / "handler" / "app.py").write_text(LOADING_HANDLER)
    (tmp_path / "opt" / "python").mkdir(parents=True)
    marker = tmp_path / "ran"
    model = malicious_model(tmp_path / "model.joblib", marker)
    with pytest.raises(PipelineError, match=FINDING):
        measure_cold_start(PYTHON, function, tmp_path / "opt", model, "handler.app.lambda_handler", runs=1)
    assert not marker.exists()


def test_post_deploy_check_refuses_the_downloaded_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On an emulator the check runs the downloaded bytes: a refused model stops it before the harness."""
    from ci.config import load_config
    from ci.deploy import verify

    marker = tmp_path / "ran"
    source = tmp_path / "source"
    source.mkdir()
    layer, function = layer_zip(source), function_zip(source, LOADING_HANDLER)
    model = malicious_model(source / "model.joblib", marker)

    def download(origin: Path) -> Any:
        def fetch(_aws: Any, _candidate: Any, target: Path) -> Path:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(origin.read_bytes())
            return target

        return fetch

    monkeypatch.setattr(verify, "fetch_function_code", download(function))
    monkeypatch.setattr(verify, "fetch_layer", download(layer))
    monkeypatch.setattr(verify, "fetch_model", download(model))
    candidate = verify.Candidate("fn", "7", {}, "bucket", "artifacts")
    config = load_config(overrides={"smoke": {"warm_invocations": 0, "warm_event": ""}})
    paths = BuildPaths(build=tmp_path / "build", cache=REPO_ROOT / "build" / "cache")
    with pytest.raises(PipelineError, match=FINDING):
        verify.emulator_check(None, config, paths, candidate, tiny_events(tmp_path / "events"))  # type: ignore[arg-type]
    assert not marker.exists()
