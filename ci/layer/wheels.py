"""Step 1, fetch: the lock's wheels for the Lambda target, in a download cache.

A cached wheel counts only if its sha256 is one the lock allows and its tags fit the target,
so a warm rebuild never touches the network and a tampered cache is downloaded again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename

from ci.config import Target
from ci.errors import PipelineError
from ci.lock.lockfile import LockFile, Pin, read_lock
from ci.lock.tags import target_tags
from ci.pip import run_pip
from ci.reports import sha256_file

logger = logging.getLogger(__name__)


def read_layer_lock(path: Path) -> LockFile:
    """The layer lock, read strictly: the build installs exactly its pins, each `name==version` with a --hash."""
    if not path.is_file():
        raise PipelineError(f"{path} not found", "run `python -m ci lock` to compile requirements.in for the target")
    lock = read_lock(path)
    for pin in lock.entries:
        if pin.version is None:
            raise PipelineError(
                f"{path.name}:{pin.line}: {pin.text.split()[0]!r} is not pinned as name==version",
                "run `python -m ci lock` (the build installs exact, hashed pins only)",
            )
        if not pin.sha256:
            raise PipelineError(
                f"{path.name}:{pin.line}: {pin.name}=={pin.version} has no --hash",
                "run `python -m ci lock` (it writes a sha256 for every wheel)",
            )
    if not lock.entries:
        raise PipelineError(f"{path} pins nothing", "run `python -m ci lock`")
    return lock


@dataclass(frozen=True)
class CachedWheel:
    pin: Pin
    path: Path
    sha256: str


@dataclass(frozen=True)
class FetchResult:
    wheels: tuple[CachedWheel, ...]
    downloaded: bool  # False: every wheel came from the cache (no network)

    @property
    def bytes(self) -> int:
        return sum(wheel.path.stat().st_size for wheel in self.wheels)


def find_cached(lock: LockFile, cache: Path, target: Target) -> tuple[list[CachedWheel], list[Pin]]:
    """Cached wheels matching the lock by name, version, target tags and hash; and the pins still missing."""
    tags = target_tags(target)
    by_key: dict[tuple[str, str], list[Path]] = {}
    for path in sorted(cache.glob("*.whl")) if cache.is_dir() else []:
        try:
            name, version, _build, wheel_tags = parse_wheel_filename(path.name)
        except ValueError:
            continue
        if wheel_tags & tags:
            by_key.setdefault((canonicalize_name(name), str(version)), []).append(path)
    found, missing = [], []
    for pin in lock.entries:
        assert pin.version is not None  # read_layer_lock admits exact pins only
        match = None
        for path in by_key.get((pin.name, _canonical_version(pin.version)), []):
            digest = sha256_file(path)
            if digest in pin.sha256:
                match = CachedWheel(pin, path, digest)
                break
        if match is None:
            missing.append(pin)
        else:
            found.append(match)
    return found, missing


def fetch(lock: LockFile, cache: Path, target: Target, index_url: str) -> FetchResult:
    """Every pin's wheel for the target, downloading only when the cache lacks one."""
    found, missing = find_cached(lock, cache, target)
    logger.debug(
        f"wheel cache {cache}: {len(found)} hit(s), {len(missing)} miss(es)"
        + (f" ({', '.join(f'{pin.name}=={pin.version}' for pin in missing)})" if missing else "")
    )
    if not missing:
        return FetchResult(tuple(found), downloaded=False)
    cache.mkdir(parents=True, exist_ok=True)
    _pip_download(lock, cache, target, index_url)
    found, missing = find_cached(lock, cache, target)
    if missing:
        names = ", ".join(f"{pin.name}=={pin.version}" for pin in missing)
        raise PipelineError(
            f"no wheel for {target.runtime.name} {target.architecture} (glibc {target.glibc}) "
            f"with a locked hash: {names}",
            "run `python -m ci lock --check` to see which platform tags those versions have, then `python -m ci lock`",
        )
    return FetchResult(tuple(found), downloaded=True)


def _pip_download(lock: LockFile, cache: Path, target: Target, index_url: str) -> None:
    result = run_pip(
        "download", target, index_url, "--no-deps", "--require-hashes", "-r", str(lock.path), "-d", str(cache)
    )
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-6:])
        raise PipelineError(
            f"pip could not download the lock's wheels for {target.runtime.name} {target.architecture}:\n{tail}",
            "check the network and index_url; `python -m ci lock --check` names pins without a target wheel",
        )


def _canonical_version(version: str) -> str:
    from packaging.version import Version

    return str(Version(version))
