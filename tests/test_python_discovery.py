"""The target decides the Python: `python3 -m ci.python` reads it from pipeline.toml and finds it
(PATH, uv, pyenv), and `make venv` builds one venv per target Python with it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ci import python as discovery
from ci.config import load_policy
from ci.errors import PipelineError
from ci.paths import REPO_ROOT
from tests.config_fixtures import RUNTIMES, TARGET, edited_config

FAKE = "3.99"  # a version no interpreter here has, so only the fakes below can answer


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_runtime_names_the_python(tmp_path: Path, runtime: str) -> None:
    config = edited_config(tmp_path, "target", "runtime", f'runtime = "{runtime}"')
    assert discovery.runtime_python(config) == load_policy()[runtime].python
    result = subprocess.run(
        ["python3", "-m", "ci.python", "--config", str(config), "--version"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"},  # any Python 3 will do: stdlib only
    )
    assert (result.returncode, result.stdout) == (0, load_policy()[runtime].python + "\n"), result.stderr


def test_an_unknown_runtime_is_one_line(tmp_path: Path) -> None:
    config = edited_config(tmp_path, "target", "runtime", 'runtime = "python2.7"')
    with pytest.raises(PipelineError, match=r"python2\.7.* is not a known Lambda runtime") as raised:
        discovery.runtime_python(config)
    assert "python3.11" in raised.value.fix


def fake_python(path: Path, version: str | None) -> Path:
    """An executable that answers the version probe like Python `version`, or fails like a pyenv shim."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = f"echo {version}" if version else "echo 'pyenv: python: command not found' >&2; exit 127"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


@pytest.fixture()
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No real PATH, uv or pyenv: only what a test puts under tmp_path."""
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(discovery, "_uv", lambda: None)
    return tmp_path


def test_path_first_then_pyenv_past_a_broken_shim(isolated: Path) -> None:
    fake_python(isolated / "bin" / f"python{FAKE}", None)  # a pyenv shim for a version not selected
    older = fake_python(isolated / "pyenv" / "versions" / f"{FAKE}.1" / "bin" / f"python{FAKE}", FAKE)
    newer = fake_python(isolated / "pyenv" / "versions" / f"{FAKE}.10" / "bin" / f"python{FAKE}", FAKE)
    assert older.exists()
    assert discovery.find_python(FAKE) == str(newer)  # the highest patch release pyenv has
    on_path = fake_python(isolated / "bin" / f"python{FAKE}", FAKE)
    assert discovery.find_python(FAKE) == str(on_path)


def test_pyenvs_shims_are_never_run_and_a_python_later_on_path_is_found(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shim answers slowly (a shell script, ~0.2 s) for whichever version pyenv selects; the versions behind
    the shims are searched directly, and a Python in a later PATH directory is still found first."""
    ran = isolated / "shim-ran"
    shims = isolated / "pyenv" / "shims"
    (isolated / "pyenv" / "versions").mkdir(parents=True)  # pyenv is installed, without this version
    for name in (f"python{FAKE}", "python3"):
        shim = fake_python(shims / name, FAKE)
        shim.write_text(f"#!/bin/sh\ntouch {ran}\necho {FAKE}\n")
    system = fake_python(isolated / "usr-bin" / f"python{FAKE}", FAKE)
    monkeypatch.setenv("PATH", f"{shims}{os.pathsep}{system.parent}")
    assert discovery.find_python(FAKE) == str(system)
    assert not ran.exists()


def test_uv_is_asked_before_pyenv(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    found = fake_python(isolated / "uv-python" / f"python{FAKE}", FAKE)
    uv = isolated / "bin" / "uv"
    uv.write_text(f'#!/bin/sh\n[ "$1 $2" = "python find" ] && echo {found}\n')
    uv.chmod(0o755)
    monkeypatch.setattr(discovery, "_uv", lambda: str(uv))
    fake_python(isolated / "pyenv" / "versions" / f"{FAKE}.0" / "bin" / f"python{FAKE}", FAKE)
    assert discovery.find_python(FAKE) == str(found)


def test_none_found_says_how_to_provide_it_in_one_line(isolated: Path) -> None:
    fake_python(isolated / "pyenv" / "versions" / "3.98.0" / "bin" / "python3.98", "3.98")  # another version
    with pytest.raises(PipelineError) as raised:
        discovery.find_python(FAKE)
    assert f"no Python {FAKE} found" in raised.value.problem and "\n" not in str(raised.value.problem)
    assert f"pyenv install {FAKE}" in raised.value.fix and f"PYTHON=/path/to/python{FAKE}" in raised.value.fix


def test_the_targets_python_is_found_here() -> None:
    """Where the pipeline runs (CI after the setup action, this host), the target's Python is found unaided."""
    python = discovery.find_python(TARGET.runtime.python)
    assert discovery.version_of(python) == TARGET.runtime.python
