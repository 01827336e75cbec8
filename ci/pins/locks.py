"""The pin checks' view of a lock: every line must be a requirement, and only `==` is a pin.

Reading is ci.lock.lockfile's job; this adds what the pin checks demand of it. A lock is only a
lock when every entry is an exact `==` pin; anything else (`>=`, `~=`, a wildcard, a URL, no
specifier) is kept with its line so the failure can point at it.
"""

from __future__ import annotations

from pathlib import Path

from ci.errors import PipelineError
from ci.lock import lockfile
from ci.lock.lockfile import LockFile, Pin


def read_lock(path: Path, display: str | None = None) -> LockFile:
    """Read `path`; raise PipelineError if it is missing or a line is not a requirement."""
    display = display or path.name
    if not path.is_file():
        raise PipelineError(f"{display} not found ({path})", "run `python -m ci lock` to write the locks")
    lock = lockfile.read_lock(path, display)
    for pin in lock.entries:
        if pin.requirement is None:
            raise PipelineError(
                f"{display}:{pin.line}: {pin.text!r} is not a requirement ({pin.error})",
                "regenerate the lock with `python -m ci lock`",
            )
    return lock


def pinned_version(pin: Pin | None) -> str | None:
    """The exact version when the entry is a single `==` pin without wildcard, else None."""
    return pin.version if pin is not None and pin.operator == "==" else None


def why_not_pinned(pin: Pin) -> str:
    specifiers = pin.specifiers
    if not specifiers:
        return "is not pinned (no version)" if not pin.url else f"is a URL ({pin.url}), not a version pin"
    if any("*" in item.version for item in specifiers):
        return f"uses a wildcard ({pin.specifier}), not an exact `==` pin"
    operators = ", ".join(f"`{op}`" for op in sorted({item.operator for item in specifiers}))
    return f"uses {operators} ({pin.specifier}), not an exact `==` pin"
