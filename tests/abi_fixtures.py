"""Real ELF files for the ABI tests, compiled with gcc once per session, plus foreign headers."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

EXTENSION_SOURCE = r"""
#include <string.h>
/* memcpy with a runtime length is a real call to memcpy@GLIBC_2.14 on x86_64 */
void copy_bytes(char *dst, const char *src, size_t n) { memcpy(dst, src, n); }
void *PyInit_fixture(void) { return 0; }
"""

LIBRARY_SOURCE = r"""
int helper_add(int a, int b) { return a + b; }
"""

EM_AARCH64 = 183
E_MACHINE_OFFSET = 18


def compile_shared(source: str, out: Path) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build real ELF fixtures")
    src = out.with_suffix(".c")
    src.write_text(source)
    subprocess.run(["gcc", "-shared", "-fPIC", "-O0", "-o", str(out), str(src)], check=True)
    src.unlink()
    return out


def patch_bytes(path: Path, old: bytes, new: bytes) -> None:
    """Replace an equal-length byte string everywhere in a binary (keeps every offset valid)."""
    assert len(old) == len(new)
    data = path.read_bytes()
    assert old in data, f"{old!r} not in {path}"
    path.write_bytes(data.replace(old, new))


def set_machine(path: Path, machine: int) -> None:
    data = bytearray(path.read_bytes())
    data[E_MACHINE_OFFSET : E_MACHINE_OFFSET + 2] = struct.pack("<H", machine)
    path.write_bytes(bytes(data))


def pe_header() -> bytes:
    """A DOS stub whose e_lfanew points at a PE signature and a COFF header for x86_64."""
    dos = bytearray(0x80)
    dos[0:2] = b"MZ"
    dos[0x3C:0x40] = struct.pack("<I", 0x80)
    return bytes(dos) + b"PE\0\0" + struct.pack("<HH", 0x8664, 1) + bytes(16)


def macho_header() -> bytes:
    """mach_header_64 for x86_64 (MH_MAGIC_64 little-endian on disk: cf fa ed fe)."""
    return struct.pack("<IiiIIII", 0xFEEDFACF, 0x01000007, 3, 6, 0, 0, 0) + bytes(4)


def fat_header() -> bytes:
    return struct.pack(">II", 0xCAFEBABE, 2) + bytes(40)


def java_class_header() -> bytes:
    """Same magic as a universal binary, but a class-file version (Java 8 = 52) follows."""
    return struct.pack(">IHH", 0xCAFEBABE, 0, 52) + bytes(40)


def build_elf_objects(out: Path) -> dict[str, Path]:
    """{'extension': a tiny extension module needing GLIBC_2.14, 'library': a plain shared library}."""
    return {
        "extension": compile_shared(EXTENSION_SOURCE, out / "extension.so"),
        "library": compile_shared(LIBRARY_SOURCE, out / "library.so"),
    }
