"""`make venv` / `python3 -m ci.venv`: uv from its hashed pin, the target's Python, hashed locks synced exactly.

Each test runs the real Makefile and ci/venv.py in a copy holding only what they read (standard
library only), with a one-package lock from the pipeline lock (six, in uv's cache) so no test
downloads; the uv bootstrapped by the repository's own `make venv` is linked in when present.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ci import python as discovery
from ci import venv as make_venv
from ci.config import load_config, load_policy
from ci.errors import PipelineError
from ci.lock.lockfile import read_lock
from ci.paths import REPO_ROOT
from tests.config_fixtures import TARGET, edited_config, needs_python

CONFIG = load_config()
HERE = f"{sys.version_info[0]}.{sys.version_info[1]}"
STDLIB_ONLY = ("Makefile", "ci/__init__.py", "ci/python.py", "ci/venv.py", "ci/errors.py", "ci/paths.py")


def six_lock(path: Path, digest: str | None = None) -> Path:
    """A one-pin lock: six as the pipeline lock pins it (or with a wrong `digest`)."""
    six = read_lock(CONFIG.lock.pipeline_lock).pins["six"]
    hashes = [f"sha256:{digest}"] if digest else sorted(six.hashes)
    path.write_text(f"six=={six.version}" + "".join(f" \\\n    --hash={h}" for h in hashes) + "\n")
    return path


def repo_copy(tmp_path: Path, runtime: str | None = None) -> Path:
    root = tmp_path / "repo"
    for name in (*STDLIB_ONLY, "ci/policy/lambda_runtimes.json", "requirements-bootstrap.txt"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_ROOT / name, root / name)
    config = REPO_ROOT / "pipeline.toml"
    if runtime:
        config = edited_config(tmp_path, "target", "runtime", f'runtime = "{runtime}"')
    shutil.copyfile(config, root / "pipeline.toml")
    six_lock(root / "requirements-pipeline.txt")
    (root / "requirements-dev.txt").write_text("")
    bootstrapped = REPO_ROOT / "build" / "cache" / "bootstrap"
    if bootstrapped.is_dir():  # the same pin's uv: linked, not downloaded again
        shutil.copytree(bootstrapped, root / "build" / "cache" / "bootstrap", copy_function=os.link)
    return root


def make(root: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHON", "VIRTUAL_ENV", "MAKEFLAGS")}
    return subprocess.run(["make", *args], cwd=root, capture_output=True, text=True, timeout=timeout, env=env)


def test_make_venv_bootstraps_uv_and_syncs_exactly_the_lock(tmp_path: Path) -> None:
    root = repo_copy(tmp_path)
    venv = root / ".venv"
    result = make(root, "venv")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "uv pip sync --require-hashes requirements-pipeline.txt" in result.stdout
    python = venv / "bin" / "python"
    assert discovery.version_of(str(python)) == TARGET.runtime.python
    assert (venv / f".synced-pipeline-python{TARGET.runtime.python}").is_file()
    installed = subprocess.run(
        [str(python), "-c", "import six; print(six.__version__)"], capture_output=True, text=True
    )
    assert installed.stdout.strip() == read_lock(CONFIG.lock.pipeline_lock).pins["six"].version
    (root / "docs").mkdir()  # the repository's commands work from any directory in it, as git's do
    anywhere = subprocess.run(
        [str(python), "-m", "ci.python", "--version"], cwd=root / "docs", capture_output=True, text=True
    )
    assert anywhere.returncode == 0 and anywhere.stdout.strip() == TARGET.runtime.python, anywhere.stderr
    uv = list((root / "build" / "cache" / "bootstrap").glob("uv-*/bin/uv"))
    assert len(uv) == 1, "uv is bootstrapped once per pin, outside the venv"
    again = make(root, "venv")
    assert "Nothing to be done" in again.stdout or "is up to date" in again.stdout, again.stdout
    # The dev set is synced on top; a later pipeline-only sync drops the dev stamp (and whatever is not locked).
    dev = make(root, "venv-dev")
    assert dev.returncode == 0 and "requirements-pipeline.txt + requirements-dev.txt" in dev.stdout, dev.stderr
    assert (venv / f".synced-dev-python{TARGET.runtime.python}").is_file()
    later = (venv / f".synced-dev-python{TARGET.runtime.python}").stat().st_mtime + 2
    os.utime(root / "requirements-pipeline.txt", (later, later))  # the lock changed after the sync
    assert make(root, "venv").returncode == 0
    assert not (venv / f".synced-dev-python{TARGET.runtime.python}").exists()


def test_a_download_that_is_not_the_locked_bytes_is_refused(tmp_path: Path) -> None:
    root = repo_copy(tmp_path)
    six_lock(root / "requirements-pipeline.txt", digest="0" * 64)
    result = make(root, "venv")
    assert result.returncode != 0
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "hash" in line.lower() and "fix:" in line, result.stderr
    assert not (root / ".venv" / f".synced-pipeline-python{TARGET.runtime.python}").exists()


def test_uv_itself_is_installed_only_from_its_hashed_pin(tmp_path: Path) -> None:
    bootstrap = tmp_path / "requirements-bootstrap.txt"
    pin = read_lock(CONFIG.lock.bootstrap_lock).pins["uv"]
    bootstrap.write_text(f"uv=={pin.version} \\\n    --hash=sha256:{'0' * 64}\n")
    with pytest.raises(PipelineError, match=r"could not install uv from requirements-bootstrap\.txt") as raised:
        make_venv.bootstrap_uv(bootstrap, sys.executable, tmp_path / "cache")
    assert "\n" not in raised.value.problem
    assert not list((tmp_path / "cache").glob("bootstrap/uv-*")), "nothing half-installed is kept"


OTHER_RUNTIME, OTHER_PYTHON = next((name, p.python) for name, p in sorted(load_policy().items()) if p.python != HERE)


@needs_python(OTHER_PYTHON)
def test_make_venv_recreates_a_venv_of_another_python(tmp_path: Path) -> None:
    """Switching [target] runtime never reuses the old venv: the stamp names the Python, pyvenv.cfg is checked."""
    runtime, target = OTHER_RUNTIME, OTHER_PYTHON
    root = repo_copy(tmp_path, runtime)
    old = root / ".venv"
    old.mkdir()
    (old / "pyvenv.cfg").write_text(f"home = /x\nversion = {HERE}.0\n")
    (old / "left-over").write_text("")

    result = make(root, "venv")

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"made by Python {HERE}, the target needs {target}" in result.stdout
    assert not (old / "left-over").exists(), "the old venv was reused"
    assert discovery.venv_version(old) == target
    assert (old / f".synced-pipeline-python{target}").is_file()


def test_make_venv_refuses_a_python_of_another_version(tmp_path: Path) -> None:
    runtime, policy = next((name, p) for name, p in load_policy().items() if p.python != HERE)
    root = repo_copy(tmp_path, runtime)
    wrong = getattr(sys, "_base_executable", sys.executable)
    result = make(root, "venv", f"PYTHON={wrong}")
    assert result.returncode != 0
    assert f"error: {wrong} is Python {HERE}, pipeline.toml targets {policy.python}" in result.stderr
    assert not (root / ".venv").exists()


def test_lock_paths_are_read_from_pipeline_toml_with_defaults_for_older_files(tmp_path: Path) -> None:
    assert make_venv.lock_settings(REPO_ROOT / "pipeline.toml")["pipeline_lock"] == "requirements-pipeline.txt"
    older = tmp_path / "pipeline.toml"
    older.write_text('[lock]\ndev_lock = "other-dev.txt"\n')
    settings = make_venv.lock_settings(older)
    assert settings["dev_lock"] == "other-dev.txt" and settings["bootstrap_lock"] == "requirements-bootstrap.txt"


@needs_python("3.13")
def test_a_runtime_whose_python_the_locks_cannot_install_is_refused_in_seconds_before_any_download(
    tmp_path: Path,
) -> None:
    """python3.13 with the 3.11 locks: never a three-minute source build of scikit-learn, the precise refusal."""
    root = repo_copy(tmp_path, "python3.13")
    for name in ("requirements.in", "requirements-pipeline.txt"):
        shutil.copyfile(REPO_ROOT / name, root / name)
    result = make(root, "pipeline", timeout=90)
    assert result.returncode != 0
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "requirements.in pins scikit-learn==1.3.2: no wheel for Python 3.13" in line
    assert "the oldest scikit-learn with one is 1.5.2" in line
    assert "fix: move the locks first: pin scikit-learn==1.5.2 (or newer)" in line
    assert "`.venv/bin/python -m ci lock`" in line
    assert not (root / ".venv").exists(), "refused before the venv was made"
    assert "Building" not in result.stdout + result.stderr
