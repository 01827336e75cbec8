"""The pipeline's zips: written byte-identical for identical trees (deflate streams cached, checked before use), and
read only after every entry is judged as Lambda unpacks them: links, devices, non-canonical or duplicate names are
refused, a damaged zip is one PipelineError, each CRC is checked once per file per process."""

import hashlib
import os
import re
import shutil
import stat
import struct
import threading
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from ci.errors import PipelineError
from ci.reports import sha256_file

LEVEL = 6
_DOS_DATE = (0 << 9) | (1 << 5) | 1  # 1980-01-01
_DOS_TIME = 0
_METHOD_DEFLATE = 8
_VERSION = 20  # PKZIP 2.0: deflate, no zip64 (the layer is far below 4 GB)
_MADE_BY_UNIX = (3 << 8) | _VERSION


@dataclass(frozen=True)
class ZipFacts:
    sha256: str
    zipped_bytes: int
    unzipped_bytes: int
    files: int


_Entry = tuple[str, int, int, int, bytes]  # name, mode, CRC-32, size, deflate stream


def tree_entries(root: Path) -> list[tuple[str, Path]]:
    """(path relative to root, file) for every regular file under root (symbolic links left out)."""
    files = [Path(current) / name for current, _dirs, names in os.walk(root) for name in names]
    return [(path.relative_to(root).as_posix(), path) for path in files if path.is_file() and not path.is_symlink()]


def write_zip(entries: Iterable[tuple[str, Path]], destination: Path, cache: Path | None = None) -> ZipFacts:
    """Zip (name, file) pairs reproducibly, replacing `destination` atomically; `cache`: deflate streams by content."""
    ordered = sorted(entries)
    if len({name for name, _ in ordered}) != len(ordered):
        raise ValueError("duplicate archive names")
    with ThreadPoolExecutor(max_workers=2) as pool:
        prepared = list(pool.map(lambda item: _prepare(item[0], item[1], cache), ordered))
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_suffix(destination.suffix + ".partial")
    try:
        central = bytearray()
        offset = 0
        with partial.open("wb") as out:
            for text, mode, crc, size, deflated in prepared:
                name = text.encode("utf-8")
                flags = 0x800 if not text.isascii() else 0
                header = struct.pack(
                    "<IHHHHHIIIHH", 0x04034B50, _VERSION, flags, _METHOD_DEFLATE, _DOS_TIME, _DOS_DATE,
                    crc, len(deflated), size, len(name), 0,
                )  # fmt: skip
                out.write(header + name)
                out.write(deflated)
                central += struct.pack(
                    "<IHHHHHHIIIHHHHHII", 0x02014B50, _MADE_BY_UNIX, _VERSION, flags, _METHOD_DEFLATE, _DOS_TIME,
                    _DOS_DATE, crc, len(deflated), size, len(name), 0, 0, 0, 0,
                    (stat.S_IFREG | mode) << 16, offset,
                )  # fmt: skip
                central += name
                offset += len(header) + len(name) + len(deflated)
            out.write(central)
            out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(prepared), len(prepared), len(central), offset, 0))
    except BaseException:
        partial.unlink(missing_ok=True)  # an interrupted write leaves nothing behind
        raise
    partial.replace(destination)
    unzipped = sum(size for _name, _mode, _crc, size, _deflated in prepared)
    return ZipFacts(sha256_file(destination), destination.stat().st_size, unzipped, len(prepared))


def _prepare(name: str, path: Path, cache: Path | None) -> _Entry:
    data = path.read_bytes()
    mode = 0o755 if path.stat().st_mode & stat.S_IXUSR else 0o644
    return name, mode, zlib.crc32(data), len(data), _deflate(data, cache)


def _deflate(data: bytes, cache: Path | None) -> bytes:
    key = None
    if cache is not None and len(data) > 4096:
        key = cache / f"{hashlib.sha256(data).hexdigest()}-{LEVEL}-{zlib.ZLIB_RUNTIME_VERSION}.deflate"
        if key.is_file():
            cached = key.read_bytes()
            inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            # Checked against what it claims to compress: whoever wrote the cache, the zip holds `data`.
            with suppress(zlib.error):
                if inflater.decompress(cached, len(data) + 1) == data and inflater.eof and not inflater.unused_data:
                    return cached
            key.unlink(missing_ok=True)
    compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    deflated = compressor.compress(data) + compressor.flush()
    if key is not None:
        key.parent.mkdir(parents=True, exist_ok=True)
        partial = key.with_suffix(f".{os.getpid()}-{threading.get_ident()}.partial")
        partial.write_bytes(deflated)
        partial.replace(key)
    return deflated


_DRIVE = re.compile(r"^[A-Za-z]:")
# What zipfile raises on damaged or unsupported data: bad CRC, short read, bad deflate, encryption, unknown method.
_DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError, ValueError)


class UnsafeZipError(PipelineError):
    """An entry a check cannot judge the way Lambda unpacks it (link, device, escaping name, duplicate)."""


class DamagedZipError(PipelineError):
    """The archive cannot be read: not a zip, truncated, or an entry's data fails its CRC."""


def entry_problem(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    if not name:
        return "has an empty name"
    if "\\" in name:
        return "has a backslash in its name (a Windows path)"
    if _DRIVE.match(name):
        return "starts with a drive letter"
    if name.startswith("/"):
        return "is an absolute path"
    segments = (name.removesuffix("/")).split("/")
    if ".." in segments:
        return "has a '..' component (it would unpack outside the directory)"
    if "." in segments or "" in segments:
        return "is not a canonical name (a '.' or empty segment: another spelling of a path)"
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if stat.S_ISLNK(mode):
        return "is a symbolic link"
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        return f"is neither a file nor a directory (file type {oct(kind)})"
    if kind == stat.S_IFDIR and not info.is_dir():
        return "is marked a directory but its name has no trailing '/'"
    return None


# Archives whose every entry's CRC was checked in this process: (path, device, inode, size, mtime, ctime).
_checked: set[tuple[str, int, int, int, int, int]] = set()


class SafeZip:
    """An open archive whose every entry passed entry_problem and whose names are unique."""

    def __init__(self, archive: zipfile.ZipFile, how_to_make: str, shown: Path) -> None:
        self.shown = shown  # what messages name: the artifact a snapshot was taken of
        self._archive = archive
        self._fix = how_to_make
        self.infos: list[zipfile.ZipInfo] = archive.infolist()
        seen: set[str] = set()
        for info in self.infos:
            problem = entry_problem(info)
            if problem is None and info.filename.rstrip("/") in seen:
                problem = "appears twice (which copy is unpacked depends on the tool)"
            if problem is not None:
                raise UnsafeZipError(
                    f"{self.shown}: entry {info.filename!r} {problem}; refused",
                    f"{how_to_make} (the pipeline's zips hold only regular files and directories)",
                )
            seen.add(info.filename.rstrip("/"))

    @property
    def files(self) -> list[zipfile.ZipInfo]:
        return [info for info in self.infos if not info.is_dir()]

    def read(self, name: str) -> bytes:
        with self.reading(name):
            return self._archive.read(name)

    def extract_all(self, destination: Path) -> None:
        """Write every entry under destination (file modes kept, owner-readable); each CRC is checked."""
        root = destination.resolve()
        for info in self.infos:
            target = root / info.filename
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with self.reading(info.filename, target), self._archive.open(info) as source, target.open("wb") as sink:
                shutil.copyfileobj(source, sink, 1 << 20)
            mode = stat.S_IMODE(info.external_attr >> 16)
            if mode:
                target.chmod(mode | stat.S_IRUSR)

    @contextmanager
    def reading(self, entry: str, partial: Path | None = None) -> Iterator[None]:
        """Damaged data raises DamagedZipError naming the entry (and removes what was written of it)."""
        try:
            yield
        except _DAMAGED as exc:
            if partial is not None:
                partial.unlink(missing_ok=True)
            raise DamagedZipError(
                f"{self.shown} is damaged: entry {entry!r} cannot be read ({exc})", self._fix
            ) from exc


@contextmanager
def open_zip(path: Path, how_to_make: str, shown: Path | None = None, check_data: bool = True) -> Iterator[SafeZip]:
    """Open `path` and judge its entries (`shown` names it in messages); `check_data` False only for extract_all."""
    shown = shown or path
    if not path.is_file():
        raise PipelineError(f"{shown} not found", how_to_make)
    try:
        archive = zipfile.ZipFile(path)
    except _DAMAGED as exc:
        raise DamagedZipError(f"{shown} is not a readable zip file ({exc})", how_to_make) from exc
    with archive:
        zipped = SafeZip(archive, how_to_make, shown)
        status = path.stat()
        identity = (str(path.resolve()), status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns,
                    status.st_ctime_ns)  # fmt: skip
        if check_data and identity not in _checked:
            for info in zipped.files:
                with zipped.reading(info.filename), archive.open(info) as source:
                    while source.read(1 << 20):
                        pass
            _checked.add(identity)
        yield zipped
