"""requirements-bootstrap.txt: the uv that creates the venvs is exactly the pipeline lock's, with its hashes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ci.config import load_config
from ci.errors import PipelineError
from ci.lock.check import check_bootstrap
from ci.lock.lockfile import read_lock
from ci.lock.resolve import bootstrap_text, write_bootstrap
from ci.paths import REPO_ROOT

CONFIG = load_config()


def test_the_committed_bootstrap_file_is_the_pipeline_locks_uv() -> None:
    lock = CONFIG.lock
    assert check_bootstrap(lock.pipeline_lock, lock.bootstrap_lock, REPO_ROOT) == []
    uv = read_lock(lock.bootstrap_lock).pins["uv"]
    pinned = read_lock(lock.pipeline_lock).pins["uv"]
    assert (uv.version, uv.sha256) == (pinned.version, pinned.sha256) and len(uv.sha256) > 1
    assert list(read_lock(lock.bootstrap_lock).pins) == ["uv"], "uv alone: nothing else is installed unchecked"


def test_another_uv_or_a_dropped_hash_is_stale_and_rewritten(tmp_path: Path) -> None:
    pipeline = tmp_path / "requirements-pipeline.txt"
    bootstrap = tmp_path / "requirements-bootstrap.txt"
    shutil.copyfile(CONFIG.lock.pipeline_lock, pipeline)
    shutil.copyfile(CONFIG.lock.bootstrap_lock, bootstrap)
    lines = bootstrap.read_text().splitlines(keepends=True)
    bootstrap.write_text("".join(line for line in lines if "--hash" not in line or line is not lines[-1]))
    (problem,) = check_bootstrap(pipeline, bootstrap, tmp_path)
    assert problem.file == "requirements-bootstrap.txt" and problem.package == "uv"
    assert problem.line == next(n for n, line in enumerate(lines, 1) if line.startswith("uv=="))
    assert "python -m ci lock" in problem.fix
    assert write_bootstrap(pipeline, bootstrap, tmp_path) is True
    assert check_bootstrap(pipeline, bootstrap, tmp_path) == []
    assert write_bootstrap(pipeline, bootstrap, tmp_path) is False, "an unchanged pin is not rewritten"
    bootstrap.unlink()
    (missing,) = check_bootstrap(pipeline, bootstrap, tmp_path)
    assert "is missing" in missing.problem


def test_a_pipeline_lock_without_uv_says_what_to_add(tmp_path: Path) -> None:
    pipeline = tmp_path / "requirements-pipeline.txt"
    pipeline.write_text("six==1.17.0 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    with pytest.raises(PipelineError, match=r"no hashed `uv==` pin") as error:
        bootstrap_text(pipeline, tmp_path)
    assert "requirements-pipeline.in" in error.value.fix
