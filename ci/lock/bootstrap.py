"""requirements-bootstrap.txt: uv alone, at the pipeline lock's version and with its hashes.

uv creates the venvs (ci/venv.py) but comes from the lock it installs, so it is first installed by
itself with `pip install --require-hashes` from this file. Generated from the pipeline lock, never
written by hand: `python -m ci lock` writes it, `--check` fails when it says anything else.
"""

from __future__ import annotations

from pathlib import Path

from ci.errors import PipelineError
from ci.lock.files import display_path
from ci.lock.lockfile import read_lock
from ci.lock.problems import RELOCK, LockProblem, StaleLock

PACKAGE = "uv"
HEADER = (
    "# uv alone, at the version and with the hashes of {pipeline}: what creates the venvs\n"
    "# (ci/venv.py installs it with `pip install --require-hashes`). Written by `python -m ci lock`\n"
    "# from {pipeline}; never edit it by hand (`python -m ci lock --check` compares the two).\n"
)


def bootstrap_text(pipeline_lock: Path, root: Path) -> str:
    """The file's expected content: the pipeline lock's uv pin and every hash of it."""
    pin = read_lock(pipeline_lock).pins.get(PACKAGE)
    shown = display_path(pipeline_lock, root)
    if pin is None or pin.version is None or not pin.hashes:
        raise PipelineError(
            f"{shown} has no hashed `uv==` pin: the venvs cannot be bootstrapped from it",
            f"keep `uv` in {shown.replace('.txt', '.in')} and run {RELOCK}",
        )
    hashes = "".join(f" \\\n    --hash={digest}" for digest in sorted(pin.hashes))
    return HEADER.format(pipeline=pipeline_lock.name) + f"{PACKAGE}=={pin.version}{hashes}\n"


def write_bootstrap(pipeline_lock: Path, bootstrap_lock: Path, root: Path) -> bool:
    """Write the bootstrap file; True if its bytes changed."""
    text = bootstrap_text(pipeline_lock, root)
    if bootstrap_lock.is_file() and bootstrap_lock.read_text() == text:
        return False
    bootstrap_lock.write_text(text)
    return True


def check_bootstrap(pipeline_lock: Path, bootstrap_lock: Path, root: Path) -> list[LockProblem]:
    """A bootstrap file that installs another uv (or other bytes) than the pipeline lock is stale."""
    shown = display_path(bootstrap_lock, root)
    expected = bootstrap_text(pipeline_lock, root)
    if bootstrap_lock.is_file() and bootstrap_lock.read_text() == expected:
        return []
    line = None
    if bootstrap_lock.is_file():
        pin = read_lock(bootstrap_lock).pins.get(PACKAGE)
        line = pin.line if pin else None
    found = "is missing" if not bootstrap_lock.is_file() else "differs from"
    return [
        StaleLock(
            shown,
            line,
            PACKAGE,
            f"{shown} {found} the uv pin and hashes of {display_path(pipeline_lock, root)}",
            f"run {RELOCK} (it writes {shown} from the pipeline lock) and commit it",
        )
    ]
