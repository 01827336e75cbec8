"""Check 3: the environment where training runs has exactly the training lock installed."""

from __future__ import annotations

import sys

from ci.lock.lockfile import LockFile
from ci.pins.locks import pinned_version
from ci.pins.result import CheckResult, Row

INSTALLED_COLUMNS = ("package", "training lock", "installed here", "", "status")


def check_installed(training: LockFile, target_python: str) -> CheckResult:
    import importlib.metadata

    from packaging.markers import Marker

    check = CheckResult("installed", f"Installed environment ({sys.executable}) vs training lock", INSTALLED_COLUMNS)
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    # The training lock is resolved for the target's Python, and training pickles with this interpreter.
    check.rows.append(Row("python", target_python, here, "", "ok" if here == target_python else "FAIL"))
    if here != target_python:
        check.error(
            f"this environment runs Python {here} ({sys.executable}), the target runtime's is {target_python}: "
            "a model trained here would be pickled by another Python than Lambda's",
            f"recreate the venv with Python {target_python} (`make venv` finds it) and retrain",
        )
    for name, entry in sorted(training.pins.items()):
        if entry.marker and not Marker(entry.marker).evaluate():
            continue
        wanted = pinned_version(entry)
        if wanted is None:
            continue  # the locks check reports loose pins
        try:
            have: str | None = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            have = None
        ok = have == wanted
        if have is None:
            check.error(
                f"{name} {wanted} ({training.display}:{entry.line}) is not installed in {sys.prefix}",
                f"pip install --require-hashes -r {training.display}",
                training.display,
                entry.line,
            )
        elif not ok:
            check.error(
                f"{name} {have} is installed in {sys.prefix}, {training.display}:{entry.line} pins {wanted}",
                f"pip install --require-hashes -r {training.display}",
                training.display,
                entry.line,
            )
        check.rows.append(Row(name, wanted, have or "(missing)", "", "ok" if ok else "FAIL"))
    return check
