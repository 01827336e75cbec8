"""SnapStart (python3.12+): the config refuses it on python3.11, deploy publishes versions with it, the handler's
hooks warm the model before the snapshot and re-seed and re-check it after a restore, and smoke drives
init -> before-snapshot -> snapshot -> restore -> after-restore -> invoke through the Runtime API's /restore routes."""

from __future__ import annotations

import json
import pickle
import random
import sys
import types
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ci.config import Config, ConfigError, load_config
from ci.deploy import deployer as functions
from ci.deploy.aws import Aws
from ci.deploy.deployer import deploy
from ci.paths import REPO_ROOT, BuildPaths
from ci.smoke.harness import ORDER, SmokeResult, run_smoke
from handler import snapstart
from handler.errors import ModelLoadError
from tests.config_fixtures import needs_python
from tests.smoke_fixtures import (
    TINY_HANDLER,
    function_zip,
    layer_zip,
    run_tiny,
    smoke_config,
    tiny_events,
    write_answers,
)

pytest.register_assert_rewrite("tests.moto_fixtures")
from tests.moto_fixtures import BytesCheck, FakeBuild, deploy_report  # noqa: E402

pytest_plugins = ["tests.moto_fixtures"]
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")
PYTHON312 = {"target": {"runtime": "python3.12"}, "function": {"snapstart": True}}


# --- configuration --------------------------------------------------------------------------------


def test_snapstart_is_off_by_default_and_refused_on_python311_with_the_reason() -> None:
    assert load_config().function.snapstart is False
    with pytest.raises(ConfigError) as refused:
        load_config(overrides={"function": {"snapstart": True}})
    assert "snapstart = true but [target] runtime = python3.11" in refused.value.problem
    assert "SnapStart for Python needs python3.12 or later" in refused.value.problem
    assert 'runtime = "python3.12"' in refused.value.fix
    assert load_config(overrides=PYTHON312).function.snapstart is True
    with pytest.raises(ConfigError, match="true or false"):
        load_config(overrides={"function": {"snapstart": "yes"}})


# --- deploy -----------------------------------------------------------------------------------------


def record_params(aws: Aws) -> list[tuple[str, dict[str, Any]]]:
    """(operation, parameters) of every Lambda call, as botocore is about to send them."""
    sent: list[tuple[str, dict[str, Any]]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        sent.append((model.name, dict(params)))

    aws.lambda_.meta.events.register("provide-client-params.lambda.*", record)
    return sent


def test_deploy_publishes_versions_with_snapstart_and_turns_it_off_again(aws: Aws, build: FakeBuild) -> None:
    config = load_config(overrides=PYTHON312)
    sent = record_params(aws)
    outcome = deploy(config, build.paths, aws, verifier=BytesCheck(build))
    create = [params for name, params in sent if name == "CreateFunction"]
    assert create and create[0]["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert create[0]["Runtime"] == "python3.12"
    report = deploy_report(build.paths)["snapstart"]
    assert report["requested"] == "PublishedVersions" and outcome.snapstart == report
    assert report["reported"] == "None" and "does not model SnapStart" in report["note"]  # moto: stated, not hidden

    sent.clear()
    build.make(model="m2")
    deploy(load_config(overrides={"target": {"runtime": "python3.12"}}), build.paths, aws, verifier=BytesCheck(build))
    updates = [params for name, params in sent if name == "UpdateFunctionConfiguration"]
    assert updates and updates[0]["SnapStart"] == {"ApplyOn": "None"}


def test_a_version_without_the_requested_snapstart_is_named() -> None:
    desired = functions.Desired("f", "arm64", "sha", {}, {"SnapStart": {"ApplyOn": "PublishedVersions"}})
    problem = functions.snapstart_problem({"Version": "7", "SnapStart": {"ApplyOn": "None"}}, desired)
    assert (
        problem == "version 7 reports SnapStart ApplyOn=None, this deploy asked for ApplyOn=PublishedVersions "
        "([function] snapstart)"
    )
    assert functions.snapstart_problem({"SnapStart": {"ApplyOn": "PublishedVersions"}}, desired) is None
    assert desired.configuration["SnapStart"] == {"ApplyOn": "PublishedVersions"}


# --- the handler's hooks --------------------------------------------------------------------------


@pytest.fixture()
def model_env(trained_model: BuildPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    model = tmp_path / "model.joblib"
    model.write_bytes(trained_model.model.read_bytes())
    monkeypatch.setenv("MODEL_PATH", str(model))
    monkeypatch.delenv("MODEL_SHA256", raising=False)
    monkeypatch.delenv("MODEL_S3_URI", raising=False)
    return model


def test_the_handler_registers_its_hooks_only_where_the_runtime_provides_them(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # absent: import fails
    assert snapstart.register() is False
    registered: dict[str, list[Any]] = {"before": [], "after": []}
    fake = types.ModuleType("snapshot_restore_py")
    fake.register_before_snapshot = registered["before"].append  # type: ignore[attr-defined]
    fake.register_after_restore = registered["after"].append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", fake)
    assert snapstart.register() is True
    assert registered == {"before": [snapstart.before_snapshot], "after": [snapstart.after_restore]}


def test_after_restore_reseeds_and_refuses_a_model_file_that_changed(model_env: Path, capsys) -> None:
    snapstart.before_snapshot()
    random.seed(1)
    snapshot_state = random.getstate()
    snapstart.after_restore()
    assert random.getstate() != snapshot_state
    logged = [json.loads(line)["event"] for line in capsys.readouterr().out.splitlines()]
    assert logged == ["before-snapshot", "after-restore"]
    model_env.write_bytes(model_env.read_bytes() + b"\0")
    with pytest.raises(ModelLoadError, match=r"after restore: .* hashes to"):
        snapstart.after_restore()


# --- smoke ----------------------------------------------------------------------------------------

HOOKS = """
from snapshot_restore_py import register_after_restore, register_before_snapshot
import time
STATE = []
register_before_snapshot(lambda: STATE.append("before"))
register_after_restore(lambda: STATE.append("after"))
"""


def snapstart_config() -> Config:
    """SnapStart on this host's python3.11 (the config refuses it; the runtime's awslambdaric supports it)."""
    config = smoke_config()
    return replace(config, function=replace(config.function, snapstart=True))


def run_snapstart(tmp_path: Path, app: str, layer: Path | None = None, model: Path | None = None) -> SmokeResult:
    tmp_path.mkdir(parents=True, exist_ok=True)
    model_file = model or tmp_path / "model.joblib"
    if model is None:
        model_file.write_bytes(pickle.dumps({"unused": "by the tiny handlers"}))
    paths = BuildPaths(build=tmp_path / "build", cache=REPO_ROOT / "build" / "cache")
    events = tiny_events(tmp_path / "events") if layer is None else None
    manifest = write_answers(tmp_path / "answers" / "model.json", model_file, events) if events else None
    return run_smoke(
        layer or layer_zip(tmp_path),
        function_zip(tmp_path, app),
        model_file,
        snapstart_config(),
        paths,
        events,
        manifest,
    )


def test_smoke_drives_init_before_snapshot_restore_after_restore_then_invoke(tmp_path: Path) -> None:
    result = run_snapstart(tmp_path, HOOKS + TINY_HANDLER)
    assert result.passed, result.failures
    restored = result.report["init"]["snapstart"]
    assert restored["state"] == "ready" and restored["order"] == list(ORDER)
    assert restored["hooks"]["before_snapshot"]["hooks"] == 1 and restored["hooks"]["after_restore"]["hooks"] == 1
    assert 0 <= restored["restore_s"] < 5 and "cannot be measured off AWS" in restored["restore_note"]
    phases = restored["phases_s"]
    assert [phases[name] for name in ORDER] == sorted(phases[name] for name in ORDER)
    assert all(event["passed"] for event in result.report["events"])


def test_smoke_names_missing_hooks_and_a_failing_after_restore_hook(tmp_path: Path) -> None:
    result = run_snapstart(tmp_path / "none", TINY_HANDLER)
    assert not result.passed
    assert any("registered no before-snapshot hook" in failure for failure in result.failures)
    assert any("registered no after-restore hook" in failure for failure in result.failures)
    failing = HOOKS.replace('STATE.append("after")', "1 / 0")
    result = run_snapstart(tmp_path / "failing", failing + TINY_HANDLER)
    assert not result.passed
    assert any(failure.startswith("after-restore hook failed") for failure in result.failures), result.failures


def test_the_real_handler_warms_before_the_snapshot_and_rechecks_after_restore(
    tmp_path: Path, built_layer: BuildPaths
) -> None:
    paths = built_layer
    config = snapstart_config()
    work = BuildPaths(build=tmp_path / "build", cache=paths.cache)
    result = run_smoke(paths.layer_zip, paths.function_zip, paths.model, config, work, config.smoke.events)
    assert result.passed, result.failures
    restored = result.report["init"]["snapstart"]
    assert restored["order"] == list(ORDER)
    assert restored["hooks"]["before_snapshot"]["hooks"] == 1 and restored["hooks"]["after_restore"]["hooks"] == 1
    log = (work.build / "smoke" / "control" / "function.log").read_text().splitlines()
    events = [json.loads(line)["event"] for line in log if line.startswith('{"event"')]
    assert events[:3] == ["before-snapshot", "after-restore", "invocation"], events[:5]


@needs_python("3.12")
def test_on_python312_the_configured_snapstart_runs_the_hooks_in_order(tmp_path: Path) -> None:
    """No override of the checked config: python3.12 + [function] snapstart = true, as a user writes it."""
    result = run_tiny(tmp_path, HOOKS + TINY_HANDLER, **PYTHON312)
    assert result.passed, result.failures
    assert result.report["runtime"] == "python3.12"
    restored = result.report["init"]["snapstart"]
    assert restored["order"] == list(ORDER)
    assert restored["hooks"]["before_snapshot"]["hooks"] == 1 and restored["hooks"]["after_restore"]["hooks"] == 1
