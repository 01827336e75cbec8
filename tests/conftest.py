"""Shared fixtures: one real training run and one real layer build per test session.

They run the same commands a person runs (python -m training, python -m ci build) into
build/test/, sharing the download cache of build/cache/ so reruns are warm.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from ci.paths import REPO_ROOT, BuildPaths
from tests import scheduling

# `make test` runs the suite on every core (pytest-xdist): tests/scheduling.py sends every file using
# the session's layer build to one worker, so it is built once; the download cache is shared (its writers
# lock or write atomically).
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
SESSION_BUILD = REPO_ROOT / "build" / ("test" + (f"-{WORKER}" if WORKER else ""))


def run_cli(*args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python <args>` from the repository root, as a user would; returns the completed process."""
    result = subprocess.run(
        [sys.executable, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"python {' '.join(args)} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


@pytest.fixture
def ci_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """What `python -m ci`'s modules logged at INFO and above during the test: `ci_log.messages`."""
    caplog.set_level(logging.INFO, logger="ci")
    return caplog


@pytest.fixture(scope="session")
def session_paths() -> BuildPaths:
    return BuildPaths(build=SESSION_BUILD, cache=REPO_ROOT / "build" / "cache")


@pytest.fixture(scope="session")
def trained_model(session_paths: BuildPaths, pytestconfig: pytest.Config) -> BuildPaths:
    """build/test/model/model.joblib + model.json from the default simulator and seed.

    Trained once per run (python -m training, ~4 CPU-s) and copied by every other worker: the same seed
    gives byte-identical artifacts (test_training_cli proves it by training again)."""
    run = getattr(pytestconfig, "workerinput", {}).get("testrunuid") or RUN_ID
    shared = REPO_ROOT / "build" / f"test-model-{run}"
    shared.parent.mkdir(parents=True, exist_ok=True)
    with shared.with_name(f"{shared.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other workers wait for the first one's training
        if not (shared / "model.json").is_file():
            partial = shared.with_name(f"{shared.name}.partial")
            shutil.rmtree(partial, ignore_errors=True)
            run_cli("-m", "training", "--out-dir", str(partial))
            partial.rename(shared)
            _remove_old_runs(shared)
    shutil.copytree(shared, session_paths.model_dir, dirs_exist_ok=True)
    return session_paths


RUN_ID = uuid.uuid4().hex  # a run without xdist workers


def _remove_old_runs(current: Path, age_s: float = 3600) -> None:
    """Models (and locks) of runs that ended long ago; a run still going has touched its own recently."""
    for old in current.parent.glob("test-model-*"):
        if old.name.startswith(current.name) or time.time() - old.stat().st_mtime < age_s:
            continue
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def built_layer(trained_model: BuildPaths) -> BuildPaths:
    """build/test/layer.zip + function.zip + reports/build.json from the committed lock."""
    paths = trained_model
    run_cli("-m", "ci", "--build-dir", str(paths.build), "--cache-dir", str(paths.cache), "build")
    return paths


@pytest.fixture()
def repo_root() -> Path:
    return REPO_ROOT


# Fixtures that build something real from PyPI: the layer, or a throwaway virtualenv with other
# library versions. A test that uses one is slow, whether or not it says so.
SLOW_FIXTURES = frozenset({"built_layer", "foreign_bundles"})


@pytest.hookimpl(tryfirst=True)  # before `-m "not slow"` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def pytest_configure(config: pytest.Config) -> None:
    scheduling.register(config)
