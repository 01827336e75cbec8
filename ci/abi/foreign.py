"""Binaries built for Windows or macOS: they never load on Lambda, whatever their name says.

A wheel built for the wrong platform (or a hand-copied site-packages from a laptop) ships
.pyd/.dll files or Mach-O objects named .so; both fail on Lambda only at import time.
"""

from __future__ import annotations

import struct
from pathlib import Path

FOREIGN_SUFFIXES = {".pyd": "Windows", ".dll": "Windows", ".exe": "Windows", ".dylib": "macOS"}
MACHO_MAGICS = {
    b"\xfe\xed\xfa\xce",  # MH_MAGIC (32-bit, big-endian order)
    b"\xce\xfa\xed\xfe",  # MH_CIGAM
    b"\xfe\xed\xfa\xcf",  # MH_MAGIC_64
    b"\xcf\xfa\xed\xfe",  # MH_CIGAM_64
}
FAT_MAGICS = {b"\xca\xfe\xba\xbe", b"\xbe\xba\xfe\xca"}  # universal binaries (FAT_MAGIC / FAT_CIGAM)
# 0xcafebabe is also a Java class file; there the next word is the class version (>= 45),
# in a universal binary it is the number of architectures (a handful). `file` decides the same way.
MAX_FAT_ARCHES = 30
HEADER_BYTES = 64


def foreign_kind(path: Path, head: bytes) -> str | None:
    """ "Windows PE"/"Mach-O"/... when `path` (whose first bytes are `head`) is a foreign binary, else None."""
    if head[:2] == b"MZ" and _has_pe_signature(path, head):
        return "Windows PE executable"
    if head[:4] in MACHO_MAGICS:
        return "macOS Mach-O binary"
    if head[:4] in FAT_MAGICS and len(head) >= 8:
        order = ">" if head[:4] == b"\xca\xfe\xba\xbe" else "<"
        (count,) = struct.unpack(f"{order}I", head[4:8])
        if 0 < count < MAX_FAT_ARCHES:
            return "macOS universal (fat) Mach-O binary"
    system = FOREIGN_SUFFIXES.get(path.suffix.lower())
    if system is not None:
        return f"{system} binary by its name ({path.suffix})"
    return None


def _has_pe_signature(path: Path, head: bytes) -> bool:
    """DOS 'MZ' header whose e_lfanew points at 'PE\\0\\0' (text files may start with 'MZ' too)."""
    if len(head) < 0x40:
        return False
    (offset,) = struct.unpack("<I", head[0x3C:0x40])
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read(4) == b"PE\0\0"
