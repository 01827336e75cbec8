"""A Python of the target version that sees nothing but the paths we give it, for results that must hold on Lambda
(`-I -S` drops site-packages, the user site and PYTHON* variables; sys.path is then set explicitly, in order)."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from ci.python import find_python

# Variables that change how numerical libraries behave on this machine's CPU: passed through
# unchanged so a child computes what its parent would.
PASSTHROUGH_ENV = ("PATH", "LANG", "LC_ALL", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "SYSTEMROOT")


@functools.cache
def target_python(version: str) -> str:
    """The interpreter for a target Python version like "3.12" (outside any virtualenv; see ci/python.py)."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return getattr(sys, "_base_executable", sys.executable)
    return find_python(version)


def isolated_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {key: os.environ[key] for key in PASSTHROUGH_ENV if key in os.environ}
    env.setdefault("LANG", "C.UTF-8")
    env.update(extra or {})
    return env


def isolated_command(python: str, sys_path: Sequence[Path | str], code: str) -> list[str]:
    """argv running `code` with sys.path = `sys_path` + the standard library; -B: no __pycache__ left behind
    (Lambda's /opt is read-only: a run that wrote bytecode would make later measurements of the tree look warm)."""
    prelude = f"import sys; sys.path[:0] = {[str(p) for p in sys_path]!r}\n"
    return [python, "-I", "-S", "-B", "-c", prelude + code]


def run_isolated(
    python: str, sys_path: Sequence[Path | str], code: str, env: Mapping[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        isolated_command(python, sys_path, code),
        env=isolated_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
