"""Opening a joblib file the way joblib.load does, minus the unpickling: find the compression
from the magic bytes (joblib/compressor.py's prefixes, checked in joblib's order) and return
the raw stream of pickle opcodes and array bytes.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from dataclasses import dataclass
from pathlib import Path

from ci.errors import PipelineError

# joblib.compressor: prefix -> name, in joblib's registration order (zlib, gzip, bz2, lzma, xz, lz4).
ZFILE_PREFIX = b"ZF"  # joblib < 0.9.3: arrays in separate files, a format joblib itself deprecates
MAGIC: list[tuple[bytes, str]] = [
    (b"\x78", "zlib"),
    (b"\x1f\x8b", "gzip"),
    (b"BZ", "bz2"),
    (b"\x5d\x00", "lzma"),
    (b"\xfd\x37\x7a\x58\x5a", "xz"),
    (b"\x04\x22\x4d\x18", "lz4"),
]
# A model is megabytes; a stream that inflates past this is refused rather than filling memory.
MAX_DECOMPRESSED_BYTES = 2 * 1024**3


class ContainerError(PipelineError):
    """The file is not a joblib container this check can open."""


@dataclass(frozen=True)
class Container:
    compression: str  # "none" | zlib | gzip | bz2 | lzma | xz | lz4
    stored_bytes: int
    stream: bytes  # the decompressed pickle stream (opcodes with raw array bytes in between)


def detect_compression(head: bytes) -> str:
    if head.startswith(ZFILE_PREFIX):
        return "joblib<0.10"
    for prefix, name in MAGIC:
        if head.startswith(prefix):
            return name
    return "none"


def open_container(path: Path, limit: int = MAX_DECOMPRESSED_BYTES) -> Container:
    if not path.is_file():
        raise ContainerError(f"model artifact {path} not found", "train it first: `python -m training`")
    return read_container(path, path.read_bytes(), limit)


def read_container(path: Path, raw: bytes, limit: int = MAX_DECOMPRESSED_BYTES) -> Container:
    """The container of bytes already read from `path` (named in errors)."""
    compression = detect_compression(raw[:8])
    if compression == "joblib<0.10":
        raise ContainerError(
            f"{path} was written by joblib < 0.10 (arrays in separate files); it cannot be verified",
            "retrain and dump the model with the joblib of the training lock",
        )
    if compression == "none":
        return Container("none", len(raw), raw)
    return Container(compression, len(raw), _decompress(path, raw, compression, limit))


def _decompress(path: Path, raw: bytes, compression: str, limit: int) -> bytes:
    try:
        if compression in ("zlib", "gzip"):
            inflater = zlib.decompressobj(zlib.MAX_WBITS if compression == "zlib" else 31)
            data = inflater.decompress(raw, limit + 1)
        elif compression == "bz2":
            data = bz2.BZ2Decompressor().decompress(raw, limit + 1)
        elif compression in ("lzma", "xz"):
            data = lzma.LZMADecompressor().decompress(raw, limit + 1)
        else:
            data = _lz4(path, raw)
    except (zlib.error, OSError, lzma.LZMAError, EOFError, ValueError) as exc:
        raise ContainerError(
            f"{path} looks {compression}-compressed but does not decompress ({exc})",
            "the file is damaged or not a joblib dump: retrain with `python -m training`",
        ) from exc
    if len(data) > limit:
        raise ContainerError(
            f"{path} inflates to more than {limit:,} bytes; refusing to scan it",
            "a model bundle is a few megabytes: check where this artifact came from",
        )
    return data


def _lz4(path: Path, raw: bytes) -> bytes:
    try:
        import lz4.frame
    except ImportError as exc:
        raise ContainerError(
            f"{path} is lz4-compressed and the lz4 package is not installed, so it cannot be scanned",
            "dump the model with compress=3 (zlib) or without compression, or install lz4",
        ) from exc
    data: bytes = lz4.frame.decompress(raw)
    return data
