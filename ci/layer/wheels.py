"""Step 1, fetch: the lock's wheels for the Lambda target, in a download cache.

A cached wheel counts only if its sha256 is one the lock allows and its tags fit the target,
so a warm rebuild never touches the network and a tampered cache is downloaded again.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import parse_wheel_filename

from ci.config import Target
from ci.errors import PipelineError
from ci.layer.lockfile import Lock, Pin, normalize
from ci.reports import sha256_file

# glibc versions older than manylinux's floor are not worth listing
_OLDEST_GLIBC_MINOR = 5
_LEGACY_ALIASES = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}


def target_platforms(target: Target) -> list[str]:
    """Platform tags the target's glibc accepts, most specific first (manylinux_2_26_x86_64, ...)."""
    major, minor = target.glibc_tuple
    platforms = []
    for m in range(minor, _OLDEST_GLIBC_MINOR - 1, -1):
        platforms.append(f"manylinux_{major}_{m}_{target.machine}")
        legacy = _LEGACY_ALIASES.get(m)
        if legacy and (m == 17 or target.machine in ("x86_64", "i686")):
            platforms.append(f"{legacy}_{target.machine}")
    return platforms


def target_tags(target: Target) -> list[Tag]:
    version = tuple(int(part) for part in target.runtime.python.split("."))
    platforms = target_platforms(target)
    interpreter = target.runtime.python_tag
    return [
        *cpython_tags(version, abis=[interpreter, "abi3", "none"], platforms=platforms),
        *compatible_tags(version, interpreter, platforms),
    ]


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


def find_cached(lock: Lock, cache: Path, target: Target) -> tuple[list[CachedWheel], list[Pin]]:
    """Cached wheels matching the lock by name, version, target tags and hash; and the pins still missing."""
    tags = set(target_tags(target))
    by_key: dict[tuple[str, str], list[Path]] = {}
    for path in sorted(cache.glob("*.whl")) if cache.is_dir() else []:
        try:
            name, version, _build, wheel_tags = parse_wheel_filename(path.name)
        except ValueError:
            continue
        if wheel_tags & tags:
            by_key.setdefault((normalize(name), str(version)), []).append(path)
    found, missing = [], []
    for pin in lock.pins:
        match = None
        for path in by_key.get((pin.key, _canonical_version(pin.version)), []):
            digest = sha256_file(path)
            if digest in pin.hashes:
                match = CachedWheel(pin, path, digest)
                break
        if match is None:
            missing.append(pin)
        else:
            found.append(match)
    return found, missing


def fetch(lock: Lock, cache: Path, target: Target, index_url: str) -> FetchResult:
    """Every pin's wheel for the target, downloading only when the cache lacks one."""
    found, missing = find_cached(lock, cache, target)
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


def _pip_download(lock: Lock, cache: Path, target: Target, index_url: str) -> None:
    platforms = [arg for platform in target_platforms(target) for arg in ("--platform", platform)]
    command = [
        sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--quiet",
        "--only-binary=:all:", *platforms, "--implementation", "cp",
        "--python-version", target.runtime.python, "--abi", target.runtime.python_tag,
        "--no-deps", "--require-hashes", "-r", str(lock.path), "--index-url", index_url, "-d", str(cache),
    ]  # fmt: skip
    # The machine's pip configuration may add local indexes: the layer must come from index_url alone.
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull}
    env = {key: value for key, value in env.items() if not key.startswith("PIP_") or key == "PIP_CONFIG_FILE"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-6:])
        raise PipelineError(
            f"pip could not download the lock's wheels for {target.runtime.name} {target.architecture}:\n{tail}",
            "check the network and index_url; `python -m ci lock --check` names pins without a target wheel",
        )


def _canonical_version(version: str) -> str:
    from packaging.version import Version

    return str(Version(version))
