"""A layer zip unpacked once for every check that reads it as files (<cache>/unpacked-layers/<sha256>/), checked
against the zip (files, sizes, modes, CRC-32) on each use; least recently used copies evicted past KEPT_BYTES."""

import fcntl
import os
import shutil
import stat
import tempfile
import uuid
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from ci.reports import sha256_file
from ci.site.rules import link_or_copy
from ci.zipsafe import SafeZip, open_zip

# Unpacked bytes kept (the newest copy always): a few full layers (~230 MB each) beside any number of small ones.
KEPT_BYTES = 1_500_000_000
FIX = "rebuild it with `python -m ci build`"


def link_layer(layers: Path, layer_zip: Path, destination: Path) -> None:
    """Make `destination` (absent) a tree of hard links to `layer_zip` unpacked, checked against it first."""
    with reading(layers, layer_zip) as entry:
        shutil.copytree(entry, destination, copy_function=lambda file, to: link_or_copy(Path(file), Path(to)))


@contextmanager
def reading(layers: Path, layer_zip: Path, fix: str = FIX) -> Iterator[Path]:
    """`layer_zip` unpacked and checked against it; nothing removes it until the block ends (do not write in it)."""
    layers.mkdir(parents=True, exist_ok=True)
    with _locked(layers, fcntl.LOCK_SH):
        entry = layers / sha256_file(layer_zip)
        # CRCs: extract_all checks each entry's, and a copy is named by the sha256 of a zip it was extracted from.
        with open_zip(layer_zip, fix, check_data=False) as zipped:
            if entry.is_dir() and matches(entry, zipped):
                os.utime(entry)  # recently used: evicted last
            else:
                _discard(entry)  # if any: changed since it was unpacked
                partial = Path(tempfile.mkdtemp(prefix=f"{entry.name}.", suffix=".partial", dir=layers))
                zipped.extract_all(partial)
                _size_file(entry).write_text(str(sum(info.file_size for info in zipped.files)))
                try:
                    partial.rename(entry)
                except OSError:  # another run unpacked the same zip first
                    _discard(partial)
                    if not (entry.is_dir() and matches(entry, zipped)):
                        raise
        yield entry
    evict(layers, KEPT_BYTES)


def matches(entry: Path, zipped: SafeZip) -> bool:
    """The unpacked tree holds exactly the zip's files and directories, with its sizes, exec bits and CRCs."""
    files = {info.filename: info for info in zipped.files}
    directories = {info.filename.rstrip("/") for info in zipped.infos if info.is_dir()}
    for name in files:
        directories.update(str(parent) for parent in PurePosixPath(name).parents if str(parent) != ".")
    seen_directories: set[str] = set()
    to_check: list[tuple[Path, int]] = []
    for current, subdirectories, names in os.walk(entry):
        folder = Path(current)
        prefix = folder.relative_to(entry).as_posix()
        prefix = "" if prefix == "." else prefix + "/"
        for name in subdirectories:
            if (folder / name).is_symlink():
                return False
            seen_directories.add(prefix + name)
        for name in names:
            info = files.get(prefix + name)
            status = (folder / name).lstat()
            if info is None or not stat.S_ISREG(status.st_mode) or status.st_size != info.file_size:
                return False
            mode = stat.S_IMODE(info.external_attr >> 16)
            if mode and bool(mode & stat.S_IXUSR) != bool(status.st_mode & stat.S_IXUSR):
                return False
            to_check.append((folder / name, info.CRC))
    if seen_directories != directories or len(to_check) != len(files):
        return False
    with ThreadPoolExecutor(max_workers=2) as pool:  # zlib releases the GIL on large buffers
        return all(pool.map(lambda item: zlib.crc32(item[0].read_bytes()) == item[1], to_check))


def evict(layers: Path, kept_bytes: int) -> None:
    """Remove the least recently used copies past `kept_bytes` and half-made ones, once no check holds one."""
    leftovers = [path for path in layers.iterdir() if path.is_dir() and "." in path.name]
    if sum(_size(entry) for entry in _entries(layers)) <= kept_bytes and not leftovers:
        return
    with _locked(layers, fcntl.LOCK_EX):
        for path in leftovers:  # no check holds the shared lock: nothing is being unpacked or removed
            _discard(path)
        total = 0
        for index, entry in enumerate(sorted(_entries(layers), key=lambda e: e.stat().st_mtime, reverse=True)):
            total += _size(entry)
            if index and total > kept_bytes:
                _discard(entry)
                _size_file(entry).unlink(missing_ok=True)


def _entries(layers: Path) -> list[Path]:
    return [path for path in layers.iterdir() if path.is_dir() and "." not in path.name]


def _size_file(entry: Path) -> Path:
    return entry.with_name(f"{entry.name}.bytes")


def _size(entry: Path) -> int:
    """The unpacked bytes of a copy, recorded when it was made (a copy without the record counts as full)."""
    try:
        return int(_size_file(entry).read_text())
    except (OSError, ValueError):
        return 250_000_000


def _discard(path: Path) -> None:
    """Remove a copy (renamed aside first, so no one finds half of it); read-only files are no obstacle."""
    aside = path.with_name(f"{path.name}.{uuid.uuid4().hex}.gone")
    try:
        path.rename(aside)
    except FileNotFoundError:  # another run removed it first
        return
    for current, _subdirectories, _names in os.walk(aside):
        Path(current).chmod(0o755)
    shutil.rmtree(aside, ignore_errors=True)


@contextmanager
def _locked(layers: Path, how: int) -> Iterator[None]:
    with (layers / ".lock").open("a") as lock:
        fcntl.flock(lock, how)  # released when the file closes
        yield
