"""Snapshot, then judge: a check reads an artifact once, into a copy written and hashed in one pass, so a report
vouches for exactly the bytes it checked (hashing, then reading again, lets the file change in between)."""

import hashlib
import os
import shutil
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ci.errors import PipelineError
from ci.paths import BuildPaths

STALE_AFTER_S = 24 * 3600  # snapshots nobody took for a day are removed when a new one is taken


@dataclass(frozen=True)
class Snapshot:
    name: str  # the artifact's name as reports record it: layer.zip | function.zip | model.joblib
    path: Path  # <build>/snapshots/<sha256>/<name>
    sha256: str
    size: int


def take(paths: BuildPaths, source: Path, name: str | None = None) -> Snapshot:
    """Copy `source` to <build>/snapshots/<sha256>/<name>, hashing the bytes copied; a copy of them is reused."""
    name = name or source.name
    root = paths.build / "snapshots"
    root.mkdir(parents=True, exist_ok=True)
    try:
        sha, size = _digest(source)
    except FileNotFoundError as exc:
        raise PipelineError(f"{source} not found", "build it first (python -m ci build / python -m training)") from exc
    earlier = root / sha / name
    if earlier.is_file() and _digest(earlier) == (sha, size):  # hashed again, never trusted by its name
        os.utime(earlier.parent)
        return Snapshot(name=name, path=earlier, sha256=sha, size=size)
    with tempfile.NamedTemporaryFile(dir=root, prefix=f".{name}.", delete=False) as copy:
        # No fsync: a copy a crash cut short is hashed again before any later take reuses it.
        try:
            sha, size = _digest(source, copy)  # of the bytes copied: the source may have changed since
        except BaseException:
            Path(copy.name).unlink(missing_ok=True)
            raise
    folder = root / sha
    folder.mkdir(exist_ok=True)
    target = folder / name
    Path(copy.name).chmod(0o444)
    Path(copy.name).replace(target)  # atomic: a reader sees the old complete copy or the new one
    os.utime(folder)
    cutoff = time.time() - STALE_AFTER_S
    for stale in root.iterdir():
        with suppress(OSError):  # another process is using or removing it: leave it
            if stale != folder and stale.is_dir() and stale.stat().st_mtime < cutoff:
                shutil.rmtree(stale)
    return Snapshot(name=name, path=target, sha256=sha, size=size)


def _digest(path: Path, copy: IO[bytes] | None = None) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
            if copy is not None:
                copy.write(block)
    return digest.hexdigest(), size
