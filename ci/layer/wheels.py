"""Steps 1-2, fetch and install: the lock's wheels for the target (hash- and tag-checked), unpacked into python/ as
the wheel spec says and checked against RECORD on every unpack and reuse. No installer runs (docs/design.md)."""

import base64
import csv
import hashlib
import json
import logging
import os
import shutil
import time
import zipfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

from ci.config import Target
from ci.errors import PipelineError
from ci.lock.lockfile import LockFile, Pin, read_lock
from ci.pip import run_pip, target_tags
from ci.reports import sha256_file
from ci.site.owners import top_level_entries
from ci.site.rules import link_or_copy

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


class FetchResult(NamedTuple):
    wheels: tuple[CachedWheel, ...]
    downloaded: bool  # False: every wheel came from the cache (no network)


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
        for path in by_key.get((pin.name, str(Version(pin.version))), []):
            digest = sha256_file(path)
            if digest in pin.sha256:
                found.append(CachedWheel(pin, path, digest))
                break
        else:
            missing.append(pin)
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
    result = run_pip(
        "download", target, index_url, "--no-deps", "--require-hashes", "-r", str(lock.path), "-d", str(cache)
    )
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-6:])
        raise PipelineError(
            f"pip could not download the lock's wheels for {target.runtime.name} {target.architecture}:\n{tail}",
            "check the network and index_url; `python -m ci lock --check` names pins without a target wheel",
        )
    found, missing = find_cached(lock, cache, target)
    if missing:
        names = ", ".join(f"{pin.name}=={pin.version}" for pin in missing)
        raise PipelineError(
            f"no wheel for {target.runtime.name} {target.architecture} (glibc {target.glibc}) "
            f"with a locked hash: {names}",
            "run `python -m ci lock --check` to see which platform tags those versions have, then `python -m ci lock`",
        )
    return FetchResult(tuple(found), downloaded=True)


@dataclass
class InstalledDistribution:
    name: str  # from METADATA, e.g. scikit-learn
    version: str
    wheel: str
    files: list[str] = field(default_factory=list)  # paths relative to python/
    bytes: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # .data/<scheme> -> files not installed

    @property
    def top_level(self) -> list[str]:
        return top_level_entries(self.files)


def install_wheels(
    wheels: Sequence[CachedWheel], site: Path, unpacked: Path | None = None
) -> list[InstalledDistribution]:
    """Unpack `wheels` (hashes checked again) into a new `site`, by hard links from `unpacked` if given."""
    if site.exists():
        shutil.rmtree(site)
    site.mkdir(parents=True)
    ordered = sorted(wheels, key=lambda w: w.pin.name)
    for wheel in ordered:
        if sha256_file(wheel.path) != wheel.sha256 or wheel.sha256 not in wheel.pin.sha256:
            raise PipelineError(
                f"{wheel.path.name} changed since it was fetched: its sha256 is not in the lock",
                f"delete {wheel.path} and rerun the build",
            )
    # Two unpackers: inflating releases the GIL, and the big wheels (scipy, numpy) dominate.
    with ThreadPoolExecutor(max_workers=2) as pool:
        if unpacked is None:
            installed = list(pool.map(lambda wheel: _unpack(wheel.path, site), ordered))
        else:
            installed = list(pool.map(lambda wheel: _link(wheel, site, unpacked), ordered))
    owner: dict[str, str] = {}
    for dist in installed:
        for path in dist.files:
            if path in owner:
                raise PipelineError(
                    f"{path} is installed by both {owner[path]} and {dist.name}",
                    "two locked distributions overwrite each other: remove one from requirements.in",
                )
            owner[path] = dist.name
    return installed


_MANIFEST = "installed.json"


def _link(wheel: CachedWheel, site: Path, unpacked: Path) -> InstalledDistribution:
    """Install `wheel` by hard links from its unpacked copy, made on first use; the copy is checked first."""
    entry = unpacked / wheel.sha256
    dist = _read_entry(entry)
    if dist is not None and _record_problem(wheel.path, entry / "tree", dist) is not None:
        shutil.rmtree(entry, ignore_errors=True)  # changed since it was unpacked: unpack it again
        dist = None
    source = entry
    if dist is None:
        source = entry.with_name(f"{entry.name}.{os.getpid()}.partial")
        shutil.rmtree(source, ignore_errors=True)
        try:
            dist = _unpack(wheel.path, source / "tree")
        except BaseException:
            shutil.rmtree(source, ignore_errors=True)  # a refused (or interrupted) unpack leaves nothing behind
            raise
        (source / _MANIFEST).write_text(json.dumps(dist.__dict__))
        try:
            source.rename(entry)  # whole or not at all: builds running side by side share the cache
            source = entry
        except OSError:
            if _read_entry(entry) is not None:  # another build made it first, from the same wheel
                shutil.rmtree(source, ignore_errors=True)
                source = entry  # else something broken is in the way: install from this copy, then drop it
    for target in dist.files:
        path = site / target
        path.parent.mkdir(parents=True, exist_ok=True)
        link_or_copy(source / "tree" / target, path)
    if source != entry:
        shutil.rmtree(source, ignore_errors=True)
    return dist


def _read_entry(entry: Path) -> InstalledDistribution | None:
    try:
        return InstalledDistribution(**json.loads((entry / _MANIFEST).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _record_problem(wheel: Path, tree: Path, dist: InstalledDistribution) -> str | None:
    """Why `dist`'s files under `tree` are not what the wheel's RECORD hashes, or None (as pypa/installer checks)."""
    with zipfile.ZipFile(wheel) as archive:
        dist_info, placed, _dropped = _layout(archive, wheel)
        record_name = f"{dist_info}/RECORD"
        record = archive.read(record_name)
        rows = csv.reader(record.decode("utf-8").splitlines())  # path,sha256=<urlsafe b64>,size
        expected = {
            row[0]: row[1].removeprefix("sha256=") for row in rows if len(row) > 1 and row[1].startswith("sha256=")
        }
    if sorted(placed) != sorted(dist.files):
        return "the unpacked files are not the wheel's"
    for rel, info in placed.items():
        path, name = tree / rel, info.filename
        if name == record_name:
            if path.read_bytes() != record:
                return f"{name} differs from the wheel's"
            continue
        if name not in expected:
            return f"its RECORD gives no sha256 for {name} (the wheel spec requires one for every file but RECORD)"
        with path.open("rb") as file:
            raw = hashlib.file_digest(file, "sha256").digest()
        if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != expected[name]:
            return f"{name} does not have the sha256 its RECORD gives"
    return None


def _layout(archive: zipfile.ZipFile, wheel: Path) -> tuple[str, dict[str, zipfile.ZipInfo], dict[str, int]]:
    """The .dist-info directory, where each file installs (python/ path -> entry), files left out per .data/<scheme>."""
    members = [info for info in archive.infolist() if not info.is_dir()]
    found = {PurePosixPath(m.filename).parts[0] for m in members if m.filename.split("/")[0].endswith(".dist-info")}
    if len(found) != 1:
        raise PipelineError(f"{wheel.name} has {len(found)} .dist-info directories", "the wheel is malformed")
    dist_info = found.pop()
    data_dir = dist_info.removesuffix(".dist-info") + ".data"
    placed: dict[str, zipfile.ZipInfo] = {}
    dropped: dict[str, int] = {}
    for info in members:
        name = PurePosixPath(info.filename)
        if name.is_absolute() or ".." in name.parts:
            raise PipelineError(f"{wheel.name} contains an unsafe path {name}", "the wheel is malformed or malicious")
        if name.parts[0] != data_dir:
            target = name.as_posix()
        elif len(name.parts) > 2 and name.parts[1] in ("purelib", "platlib"):
            target = PurePosixPath(*name.parts[2:]).as_posix()
        else:
            if len(name.parts) > 2:
                dropped[name.parts[1]] = dropped.get(name.parts[1], 0) + 1
            continue
        if target in placed:
            raise PipelineError(f"{wheel.name} installs {target} twice", "the wheel is malformed")
        placed[target] = info
    return dist_info, placed, dropped


def _unpack(wheel: Path, site: Path) -> InstalledDistribution:
    with zipfile.ZipFile(wheel) as archive:
        dist_info, placed, dropped = _layout(archive, wheel)
        metadata = HeaderParser().parsestr(archive.read(f"{dist_info}/METADATA").decode("utf-8"))
        dist = InstalledDistribution(metadata["Name"], metadata["Version"], wheel.name, dropped=dropped)
        for target, info in placed.items():
            path = site / target
            path.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as source, path.open("wb") as sink:
                shutil.copyfileobj(source, sink, 1 << 20)
            path.chmod(0o755 if (info.external_attr >> 16) & 0o111 else 0o644)
            # Stable mtimes (the wheel's) keep timestamp-checked caches valid across rebuilds.
            stamp = time.mktime((*info.date_time, 0, 0, -1))
            os.utime(path, (stamp, stamp))
            dist.files.append(target)
            dist.bytes += info.file_size
    problem = _record_problem(wheel, site, dist)
    if problem is not None:
        raise PipelineError(
            f"{wheel.name}: {problem}: the wheel matches the lock's hash but not its own RECORD",
            "the wheel is malformed: pin another version in requirements.in, run `python -m ci lock`, and report it "
            "to the project",
        )
    return dist
