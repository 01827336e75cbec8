"""Step 7, zip: byte-identical zips for identical trees (fixed order, timestamps, permissions), with deflate
streams cached by content and inflated and compared before use, because the cache travels between jobs."""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import threading
import zlib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from ci.reports import sha256_file
from ci.site.tree import walk_files

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

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class _Entry:
    name: str
    mode: int
    crc: int
    size: int
    deflated: bytes


def tree_entries(root: Path) -> list[tuple[str, Path]]:
    """(path relative to root, file) for every file under root."""
    return [(path.relative_to(root).as_posix(), path) for path in walk_files(root)]


def write_zip(
    entries: Iterable[tuple[str, Path]], destination: Path, cache: Path | None = None, jobs: int = 2
) -> ZipFacts:
    """Zip (archive name, file) pairs reproducibly into `destination` (replaced atomically); `cache`: deflate
    streams keyed by content, reused across builds."""
    ordered = sorted(entries)
    names = [name for name, _ in ordered]
    if len(set(names)) != len(names):
        raise ValueError("duplicate archive names")
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        prepared = list(pool.map(lambda item: _prepare(item[0], item[1], cache), ordered))
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_suffix(destination.suffix + ".partial")
    try:
        _write(prepared, partial)
    except BaseException:
        partial.unlink(missing_ok=True)  # an interrupted write leaves nothing behind
        raise
    partial.replace(destination)
    return ZipFacts(sha256_file(destination), destination.stat().st_size, sum(e.size for e in prepared), len(prepared))


def _write(prepared: list[_Entry], partial: Path) -> None:
    central = bytearray()
    offset = 0
    with partial.open("wb") as out:
        for entry in prepared:
            name = entry.name.encode("utf-8")
            flags = 0x800 if not entry.name.isascii() else 0
            header = struct.pack(
                "<IHHHHHIIIHH", 0x04034B50, _VERSION, flags, _METHOD_DEFLATE, _DOS_TIME, _DOS_DATE,
                entry.crc, len(entry.deflated), entry.size, len(name), 0,
            )  # fmt: skip
            out.write(header + name)
            out.write(entry.deflated)
            central += struct.pack(
                "<IHHHHHHIIIHHHHHII", 0x02014B50, _MADE_BY_UNIX, _VERSION, flags, _METHOD_DEFLATE, _DOS_TIME,
                _DOS_DATE, entry.crc, len(entry.deflated), entry.size, len(name), 0, 0, 0, 0,
                (stat.S_IFREG | entry.mode) << 16, offset,
            )  # fmt: skip
            central += name
            offset += len(header) + len(name) + len(entry.deflated)
        out.write(central)
        out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(prepared), len(prepared), len(central), offset, 0))


def _prepare(name: str, path: Path, cache: Path | None) -> _Entry:
    data = path.read_bytes()
    mode = 0o755 if path.stat().st_mode & stat.S_IXUSR else 0o644
    return _Entry(name, mode, zlib.crc32(data), len(data), _deflate(data, cache))


def _deflate(data: bytes, cache: Path | None) -> bytes:
    key = None
    if cache is not None and len(data) > 4096:
        key = cache / f"{hashlib.sha256(data).hexdigest()}-{LEVEL}-{zlib.ZLIB_RUNTIME_VERSION}.deflate"
        if key.is_file():
            cached = key.read_bytes()
            # Checked against what it claims to compress: whoever wrote the cache, the zip holds `data`.
            if _inflates_to(cached, data):
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


def _inflates_to(deflated: bytes, data: bytes) -> bool:
    decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        inflated = decompressor.decompress(deflated, len(data) + 1)
    except zlib.error:
        return False
    return inflated == data and decompressor.eof and not decompressor.unused_data
