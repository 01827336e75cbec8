"""Step 2, install: unpack exactly the fetched wheels into python/, as the wheel spec says.

No installer runs (it would compile, write bookkeeping and resolve again); cached unpacked wheels are linked
in, each file hashed against the wheel's own RECORD first and never written in place.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path, PurePosixPath

from ci.errors import PipelineError
from ci.layer.wheels import CachedWheel
from ci.reports import sha256_file
from ci.site.owners import top_level_entries
from ci.site.tree import link_or_copy

_TO_ROOT = ("purelib", "platlib")


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
    wheels: list[CachedWheel] | tuple[CachedWheel, ...], site: Path, jobs: int = 2, unpacked: Path | None = None
) -> list[InstalledDistribution]:
    """Unpack `wheels` into `site` (created empty); each wheel's hash is checked again first.

    `unpacked`: where unpacked wheels are kept, to install by hard links (same file system as `site`)."""
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
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        if unpacked is None:
            installed = list(pool.map(lambda wheel: _unpack(wheel.path, site), ordered))
        else:
            installed = list(pool.map(lambda wheel: _link(wheel, site, unpacked), ordered))
    _check_no_overlap(installed)
    return installed


_MANIFEST = "installed.json"


def _link(wheel: CachedWheel, site: Path, unpacked: Path) -> InstalledDistribution:
    """Install `wheel` by hard links from its unpacked copy, made on first use; the copy is checked first."""
    entry = unpacked / wheel.sha256
    dist = _read_entry(entry)
    if dist is not None and not _matches_record(wheel.path, entry, dist):
        shutil.rmtree(entry, ignore_errors=True)  # changed since it was unpacked: unpack it again
        dist = None
    source = entry
    if dist is None:
        dist, source = _make_entry(wheel.path, entry)
    for target in dist.files:
        path = site / target
        path.parent.mkdir(parents=True, exist_ok=True)
        link_or_copy(source / "tree" / target, path)
    if source != entry:
        shutil.rmtree(source, ignore_errors=True)
    return dist


def _read_entry(entry: Path) -> InstalledDistribution | None:
    try:
        data = json.loads((entry / _MANIFEST).read_text())
        return InstalledDistribution(**data)
    except (OSError, ValueError, TypeError):
        return None


def _make_entry(wheel: Path, entry: Path) -> tuple[InstalledDistribution, Path]:
    """Unpack `wheel` as `entry`; the distribution and the directory to link from."""
    partial = entry.with_name(f"{entry.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    dist = _unpack(wheel, partial / "tree")
    (partial / _MANIFEST).write_text(json.dumps(dist.__dict__))
    try:
        partial.rename(entry)  # whole or not at all: builds running side by side share the cache
    except OSError:
        if _read_entry(entry) is None:  # something broken in the way: install from this copy, then drop it
            return dist, partial
        shutil.rmtree(partial, ignore_errors=True)  # another build made it first, from the same wheel
    return dist, entry


def _matches_record(wheel: Path, entry: Path, dist: InstalledDistribution) -> bool:
    """Every installed file has the sha256 the wheel's RECORD gives for it (RECORD itself: its bytes)."""
    with zipfile.ZipFile(wheel) as archive:
        members, dist_info, data_dir = _layout(archive, wheel)
        record_name = f"{dist_info}/RECORD"
        record = archive.read(record_name)
        expected: dict[str, str] = {}
        for line in record.decode("utf-8").splitlines():
            name, _, rest = line.partition(",")
            digest = rest.partition(",")[0]
            if digest.startswith("sha256="):
                expected[name] = digest.removeprefix("sha256=")
    scratch = InstalledDistribution(name=dist.name, version=dist.version, wheel=dist.wheel)
    wanted: dict[str, str] = {}
    for name in (info.filename for info in members):
        destination = _destination(PurePosixPath(name), data_dir, scratch, wheel)
        if destination is not None:
            wanted[destination.as_posix()] = name
    if sorted(wanted) != sorted(dist.files):
        return False
    for rel, name in wanted.items():
        path = entry / "tree" / rel
        if name == record_name:
            if path.read_bytes() != record:
                return False
            continue
        if name not in expected:
            return False  # the wheel spec hashes every file but RECORD: nothing to check it against
        with path.open("rb") as file:
            raw = hashlib.file_digest(file, "sha256").digest()
        if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != expected[name]:
            return False
    return True


def _layout(archive: zipfile.ZipFile, wheel: Path) -> tuple[list[zipfile.ZipInfo], str, str]:
    """The wheel's files, its .dist-info directory and its .data directory (names inside the zip)."""
    members = [info for info in archive.infolist() if not info.is_dir()]
    dist_info = _dist_info_dir(wheel, members)
    return members, dist_info, dist_info.removesuffix(".dist-info") + ".data"


def _unpack(wheel: Path, site: Path) -> InstalledDistribution:
    with zipfile.ZipFile(wheel) as archive:
        members, dist_info, data_dir = _layout(archive, wheel)
        metadata = HeaderParser().parsestr(archive.read(f"{dist_info}/METADATA").decode("utf-8"))
        dist = InstalledDistribution(name=metadata["Name"], version=metadata["Version"], wheel=wheel.name)
        for info in members:
            target = _destination(PurePosixPath(info.filename), data_dir, dist, wheel)
            if target is None:
                continue
            path = site / target
            path.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as source, path.open("wb") as sink:
                shutil.copyfileobj(source, sink, 1 << 20)
            unix_mode = info.external_attr >> 16
            path.chmod(0o755 if unix_mode & 0o111 else 0o644)
            # Stable mtimes (the wheel's) keep timestamp-checked caches valid across rebuilds.
            stamp = time.mktime((*info.date_time, 0, 0, -1))
            os.utime(path, (stamp, stamp))
            dist.files.append(target.as_posix())
            dist.bytes += info.file_size
    return dist


def _dist_info_dir(wheel: Path, members: list[zipfile.ZipInfo]) -> str:
    found = {PurePosixPath(m.filename).parts[0] for m in members if m.filename.split("/")[0].endswith(".dist-info")}
    if len(found) != 1:
        raise PipelineError(f"{wheel.name} has {len(found)} .dist-info directories", "the wheel is malformed")
    return found.pop()


def _destination(name: PurePosixPath, data_dir: str, dist: InstalledDistribution, wheel: Path) -> PurePosixPath | None:
    if name.is_absolute() or ".." in name.parts:
        raise PipelineError(f"{wheel.name} contains an unsafe path {name}", "the wheel is malformed or malicious")
    if name.parts[0] != data_dir:
        return name
    if len(name.parts) < 3:
        return None
    scheme = name.parts[1]
    if scheme in _TO_ROOT:
        return PurePosixPath(*name.parts[2:])
    dist.dropped[scheme] = dist.dropped.get(scheme, 0) + 1
    return None


def _check_no_overlap(installed: list[InstalledDistribution]) -> None:
    owner: dict[str, str] = {}
    for dist in installed:
        for path in dist.files:
            if path in owner:
                raise PipelineError(
                    f"{path} is installed by both {owner[path]} and {dist.name}",
                    "two locked distributions overwrite each other: remove one from requirements.in",
                )
            owner[path] = dist.name
