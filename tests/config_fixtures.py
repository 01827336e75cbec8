"""pipeline.toml with one line changed: how the configuration tests make each mistake."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

from ci.config import Config, load_config, load_policy
from ci.errors import PipelineError
from ci.paths import REPO_ROOT
from ci.python import find_python


def edited_config(tmp_path: Path, section: str, key: str, line: str | None = None, name: str = "settings.toml") -> Path:
    """A copy of pipeline.toml (under another name) whose `key` of [section] is replaced by `line`,
    or deleted when `line` is None; a `line` for a key not in the file is added to the section."""
    lines = (REPO_ROOT / "pipeline.toml").read_text().splitlines()
    start = lines.index(f"[{section}]")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines))
    found = [i for i in range(start + 1, end) if re.match(rf"{re.escape(key)}\s*=", lines[i])]
    if found and line is None:
        del lines[found[0]]
    elif found:
        lines[found[0]] = str(line)
    elif line is not None:
        lines.insert(start + 1, line)
    else:
        raise AssertionError(f"[{section}] {key} is not in pipeline.toml")
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


# The target the committed pipeline.toml describes: tests that depend on it read it from here, never
# a copy of "3.11", "cp311" or "2.26", so the suite holds for whichever runtime the file names.
CONFIG = load_config()
TARGET = CONFIG.target
PYTHON = TARGET.runtime.python  # e.g. "3.11"
PYC_TAG = f"cpython-{PYTHON.replace('.', '')}"  # bytecode names: mod.cpython-311.pyc
EXT = f"{TARGET.extension_suffix}.so"  # extension modules: _m.cpython-311-x86_64-linux-gnu.so
WHEEL_TAG = f"{TARGET.runtime.python_tag}-{TARGET.runtime.python_tag}"  # wheel names: cp311-cp311
RUNTIMES = sorted(load_policy())  # every managed runtime the policy file knows, for parametrised tests


def runtime_config(runtime: str, root: Path = REPO_ROOT, **target: str) -> Config:
    """The committed configuration with [target] runtime (and other target keys) replaced."""
    return load_config(root=root, overrides={"target": {"runtime": runtime, **target}})


@functools.cache  # a search runs interpreters: once per version and test process, not once per test module
def needs_python(version: str) -> pytest.MarkDecorator:
    """Skip, saying what to install, where ci.python's search (PATH, uv, pyenv) finds no Python `version`.
    A GitHub ubuntu-24.04 runner has 3.12 as its system Python; this machine has 3.11-3.13 under pyenv."""
    try:
        find_python(version)
        missing = ""
    except PipelineError as exc:
        missing = f"{exc.problem}; {exc.fix}"
    return pytest.mark.skipif(bool(missing), reason=f"needs Python {version}: {missing}")
