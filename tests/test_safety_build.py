"""Stale or partial evidence never opens the deploy gate, and Ctrl-C leaves nothing that passes for a build.

- build.json records the digests of the build's sources; the gate refuses zips whose sources changed.
- a smoke run on a subset of the committed events is marked partial and refused.
- Ctrl-C in `python -m ci build` is one line, exit 130, and the previous build's zips are gone.
- a tampered stripped-.so cache entry is rebuilt, not shipped.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ci.config import Config, load_config
from ci.deploy.artifacts import check_gate, local_artifacts
from ci.errors import CheckFailedError
from ci.layer.wheels import read_layer_lock
from ci.paths import REPO_ROOT, BuildPaths
from ci.reports import write_report
from tests.conftest import run_cli
from tests.moto_fixtures import judged
from tests.smoke_fixtures import TINY_HANDLER, function_zip, layer_zip, tiny_events, write_answers, write_events

OTHER_CHECKS = ("budget", "pins", "abi")


def project(root: Path) -> tuple[Config, BuildPaths]:
    """A repository of its own (handler/, locks, pipeline.toml) with a build tree holding small artifacts."""
    (root / "handler").mkdir(parents=True)
    (root / "handler" / "__init__.py").write_text("")
    (root / "handler" / "app.py").write_text(TINY_HANDLER)
    (root / "pipeline.toml").write_text((REPO_ROOT / "pipeline.toml").read_text())
    for lock in ("requirements-layer.txt", "training/requirements.txt"):
        (root / lock).parent.mkdir(parents=True, exist_ok=True)
        (root / lock).write_text((REPO_ROOT / lock).read_text())
    tiny_events(root / "tests" / "events")
    config = load_config(root)
    paths = BuildPaths(build=root / "build", cache=REPO_ROOT / "build" / "cache")
    paths.build.mkdir()
    layer_zip(paths.build)
    function_zip(paths.build, TINY_HANDLER)
    paths.model_dir.mkdir()
    paths.model.write_bytes(pickle.dumps({"unused": "by the tiny handler"}))
    write_answers(paths.model_manifest, paths.model, root / "tests" / "events")
    return config, paths


def passed_build(config: Config, paths: BuildPaths) -> None:
    from ci.layer import sources

    write_report(paths, "build", True, {"sources": sources.record(config, paths)}, judged=judged(paths, "build"))
    for check in OTHER_CHECKS:
        write_report(paths, check, True, {}, judged=judged(paths, check))
    write_report(paths, "smoke", True, {"partial": False}, judged=judged(paths, "smoke"))


def test_the_gate_refuses_a_build_whose_handler_changed(tmp_path: Path) -> None:
    config, paths = project(tmp_path)
    passed_build(config, paths)
    check_gate(paths, local_artifacts(paths), config.root)  # everything as built: open

    (tmp_path / "handler" / "app.py").write_text(TINY_HANDLER + "\n# edited after the build\n")
    (tmp_path / "handler" / "extra.py").write_text("")
    with pytest.raises(CheckFailedError) as info:
        check_gate(paths, local_artifacts(paths), config.root)
    problem = info.value.problem
    assert f"{tmp_path / 'handler' / 'app.py'} changed since the build" in problem
    assert f"{tmp_path / 'handler' / 'extra.py'} was added" in problem
    assert "`python -m ci build`" in info.value.fix


def test_the_gate_judges_a_moved_checkout_by_its_bytes_not_its_folder(tmp_path: Path) -> None:
    """A deploy job whose checkout lives elsewhere than the build job's (self-hosted runners) is not stale."""
    config, paths = project(tmp_path / "build-job")
    passed_build(config, paths)
    moved = tmp_path / "deploy-job"
    shutil.copytree(tmp_path / "build-job", moved)  # same bytes, another folder
    moved_config = load_config(moved)
    moved_paths = BuildPaths(build=moved / "build", cache=paths.cache)
    shutil.rmtree(tmp_path / "build-job")  # the build job's folder is gone, as on another runner
    check_gate(moved_paths, local_artifacts(moved_paths), moved_config.root)  # open

    (moved / "handler" / "app.py").write_text(TINY_HANDLER + "\n# edited after the build\n")
    (moved / "requirements-layer.txt").write_text("# edited\n")
    with pytest.raises(CheckFailedError) as info:
        check_gate(moved_paths, local_artifacts(moved_paths), moved_config.root)
    assert f"{moved / 'handler' / 'app.py'} changed since the build" in info.value.problem
    assert "requirements-layer.txt changed since the build" in info.value.problem
    assert "was removed" not in info.value.problem


def test_the_gate_refuses_a_changed_lock_or_model_and_a_missing_build_report(tmp_path: Path) -> None:
    config, paths = project(tmp_path)
    passed_build(config, paths)
    with (tmp_path / "requirements-layer.txt").open("a") as lock:
        lock.write("# touched\n")
    with pytest.raises(CheckFailedError, match=r"requirements-layer\.txt changed"):
        check_gate(paths, local_artifacts(paths), config.root)
    paths.report("build").unlink()
    with pytest.raises(CheckFailedError, match="build: missing"):
        check_gate(paths, local_artifacts(paths), config.root)


def test_a_smoke_run_on_a_subset_is_partial_and_the_gate_refuses_it(tmp_path: Path) -> None:
    config, paths = project(tmp_path)
    passed_build(config, paths)
    subset = write_events(
        tmp_path / "subset", {"direct": json.loads((tmp_path / "tests/events/direct.json").read_text())}
    )
    result = run_cli("-m", "ci", "--build-dir", str(paths.build), "--config", str(tmp_path / "pipeline.toml"),
                     "smoke", "--events", str(subset), check=False)  # fmt: skip
    report = json.loads(paths.report("smoke").read_text())
    assert report["passed"] is True, result.stdout + result.stderr
    assert report["partial"] is True and report["events_run"] == ["direct"]
    # --config does not move the repository: smoke.events are still the committed tests/events/.
    assert report["events_not_committed"] == ["direct"] and "direct-single" in report["events_missing"]
    assert "deploy refuses this report" in result.stdout
    with pytest.raises(CheckFailedError) as info:
        check_gate(paths, local_artifacts(paths), config.root)
    assert "smoke: partial" in info.value.problem and "ran direct; missing: apigw-v1" in info.value.problem
    assert "no --events" in info.value.fix


def test_a_smoke_run_on_the_committed_events_is_not_partial() -> None:
    from ci.smoke.events import coverage, load_events

    committed = REPO_ROOT / "tests" / "events"
    events = load_events(committed)
    assert coverage(events, committed) == {"partial": False, "events_run": [e.name for e in events]}
    assert coverage(events[1:], committed)["events_missing"] == [events[0].name]


def test_ctrl_c_during_build_is_one_line_and_leaves_no_stale_zips(tmp_path: Path) -> None:
    paths = BuildPaths(build=tmp_path / "build", cache=tmp_path / "cache")
    paths.reports.mkdir(parents=True)
    for stale in (paths.layer_zip, paths.function_zip, paths.report("build")):
        stale.write_text("from the previous build")
    # The build is interrupted while it reads a cached wheel: a FIFO no one writes, named like a locked wheel,
    # so it waits there for sure (on a fast machine a real build could finish before the signal arrives).
    pin = read_layer_lock(REPO_ROOT / "requirements-layer.txt").entries[0]
    paths.wheel_cache.mkdir(parents=True)
    os.mkfifo(paths.wheel_cache / f"{pin.name.replace('-', '_')}-{pin.version}-py3-none-any.whl")
    command = [sys.executable, "-m", "ci", "--build-dir", str(paths.build), "--cache-dir", str(paths.cache), "build"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # A shell's background job (`make test &`) starts with SIGINT ignored, and an exec keeps it so: the build is
    # started with the default disposition, as when a person presses Ctrl-C in a terminal.
    reset = "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
    process = subprocess.Popen(
        [sys.executable, "-c", reset, *command],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:  # the build is under way: its outputs are gone, the wheels are being read
        if line.startswith("machine:"):
            break
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    try:
        _out, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert process.returncode == 130, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("interrupted: `python -m ci build`"), err
    for stale in (paths.layer_zip, paths.function_zip, paths.report("build")):
        assert not stale.exists(), stale
    assert not list(paths.build.glob("*.partial"))


def test_a_tampered_strip_cache_entry_is_rebuilt(tmp_path: Path) -> None:
    from ci.layer.build import _stripped_copy
    from tests.test_rules_strip import MODULE_C, SUFFIX, gcc

    module = tmp_path / f"tiny{SUFFIX}"
    gcc(MODULE_C, module)
    cache = tmp_path / "cache"
    cache.mkdir()
    first, error = _stripped_copy(module, cache, "strip")
    assert first is not None, error
    good = first.read_bytes()
    first.write_bytes(good[:-16] + b"\0" * 16)  # someone edits the cached bytes
    again, _ = _stripped_copy(module, cache, "strip")
    assert again is not None and again.read_bytes() == good
    assert again.name == first.name and sorted(cache.iterdir()) == [again]  # one entry, sealed over the good bytes
