"""The pins of requirements-layer.txt (pip-tools format): name, version and allowed sha256s.

The build installs exactly these and nothing else, so the lock is read strictly: every
requirement must be `name==version` with at least one --hash.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from ci.errors import PipelineError

_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(?P<version>[^\s;\\]+)")
_HASH = re.compile(r"--hash=sha256:(?P<digest>[0-9a-f]{64})")


def normalize(name: str) -> str:
    """PEP 503 name: scikit_learn, Scikit-Learn and scikit.learn are one project."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Pin:
    name: str  # as written in the lock
    version: str
    hashes: frozenset[str]

    @property
    def key(self) -> str:
        return normalize(self.name)


@dataclass(frozen=True)
class Lock:
    path: Path
    pins: tuple[Pin, ...]
    digest: str  # sha256 of the lock file: the key of everything cached per lock

    def pin(self, name: str) -> Pin | None:
        return next((pin for pin in self.pins if pin.key == normalize(name)), None)


def read_lock(path: Path) -> Lock:
    if not path.is_file():
        raise PipelineError(f"{path} not found", "run `python -m ci lock` to compile requirements.in for the target")
    text = path.read_text()
    pins = []
    for number, logical in _logical_lines(text):
        if not logical or logical.startswith("-"):
            continue
        match = _PIN.match(logical)
        if match is None:
            raise PipelineError(
                f"{path.name}:{number}: {logical.split()[0]!r} is not pinned as name==version",
                "run `python -m ci lock` (the build installs exact, hashed pins only)",
            )
        hashes = frozenset(m.group("digest") for m in _HASH.finditer(logical))
        if not hashes:
            raise PipelineError(
                f"{path.name}:{number}: {match.group('name')}=={match.group('version')} has no --hash",
                "run `python -m ci lock` (it writes a sha256 for every wheel)",
            )
        pins.append(Pin(match.group("name"), match.group("version"), hashes))
    if not pins:
        raise PipelineError(f"{path} pins nothing", "run `python -m ci lock`")
    return Lock(path=path, pins=tuple(pins), digest=hashlib.sha256(text.encode()).hexdigest())


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Join backslash continuations and drop comments; keep the first physical line's number."""
    lines: list[tuple[int, str]] = []
    current, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0] if not raw.lstrip().startswith("#") else ""
        line = line.strip()
        if not current:
            start = number
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        lines.append((start, current.strip()))
        current = ""
    if current:
        lines.append((start, current.strip()))
    return lines
