"""The facts of one ELF file that decide whether it loads on the target (via pyelftools).

Only what the loader cares about: machine and class (wrong ones fail with "wrong ELF class"
or "cannot open shared object"), the GLIBC symbol versions it needs (a version newer than the
runtime's glibc fails with "version `GLIBC_2.28' not found"), and whether it is a Python
extension module (exports PyInit_*).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection, GNUVerSymSection
from elftools.elf.sections import SymbolTableSection

ELF_MAGIC = b"\x7fELF"
GLIBC_VERSION = re.compile(r"^GLIBC_(\d+(?:\.\d+)+)$")
MACHINES = {"x86_64": "EM_X86_64", "aarch64": "EM_AARCH64"}  # wheel/uname spelling -> e_machine
SYMBOLS_PER_VERSION = 5  # enough to name the culprit in a message, small enough for a report


class ElfReadError(Exception):
    """The file starts like an ELF file but cannot be parsed (truncated or corrupt)."""


@dataclass(frozen=True)
class ElfFacts:
    machine: str  # pyelftools' e_machine name, e.g. EM_X86_64
    elf_class: int  # 32 | 64
    little_endian: bool
    elf_type: str  # ET_DYN, ET_EXEC, ET_REL...
    # GLIBC version required -> (library that must provide it, first few symbols needing it)
    glibc_needs: dict[tuple[int, ...], tuple[str, list[str]]] = field(default_factory=dict)
    exports_pyinit: bool = False

    @property
    def max_glibc(self) -> tuple[int, ...] | None:
        return max(self.glibc_needs, default=None)


def is_elf(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) == ELF_MAGIC


def version_text(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


def parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def read_elf(path: Path) -> ElfFacts:
    """Parse `path`; raises ElfReadError when it is not a readable ELF file."""
    try:
        with path.open("rb") as handle:
            elf = ELFFile(handle)
            versions = _version_names(elf)
            needs, pyinit = _dynamic_symbols(elf, versions)
            return ElfFacts(
                machine=str(elf.header["e_machine"]),
                elf_class=elf.elfclass,
                little_endian=elf.little_endian,
                elf_type=str(elf.header["e_type"]),
                glibc_needs=needs,
                exports_pyinit=pyinit,
            )
    except (ELFError, OSError) as exc:
        raise ElfReadError(f"{type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # truncated files make pyelftools' struct parser raise its own errors
        raise ElfReadError(f"{type(exc).__name__}: {exc}") from exc


def _version_names(elf: ELFFile) -> dict[int, tuple[str, str]]:
    """vna_other index -> (library, version name) for every version this file needs (.gnu.version_r)."""
    names: dict[int, tuple[str, str]] = {}
    for section in elf.iter_sections():
        if not isinstance(section, GNUVerNeedSection):
            continue
        for verneed, auxiliaries in section.iter_versions():
            for aux in auxiliaries:
                names[int(aux["vna_other"])] = (str(verneed.name), str(aux.name))
    return names


def _dynamic_symbols(
    elf: ELFFile, versions: dict[int, tuple[str, str]]
) -> tuple[dict[tuple[int, ...], tuple[str, list[str]]], bool]:
    """GLIBC versions needed (with the undefined symbols that need them) and whether PyInit_* is exported."""
    needs: dict[tuple[int, ...], tuple[str, list[str]]] = {}
    for library, name in versions.values():
        match = GLIBC_VERSION.match(name)
        if match:
            needs.setdefault(parse_version(match.group(1)), (library, []))

    dynsym = next((s for s in elf.iter_sections() if isinstance(s, SymbolTableSection) and s.name == ".dynsym"), None)
    versym = next((s for s in elf.iter_sections() if isinstance(s, GNUVerSymSection)), None)
    exports_pyinit = False
    if dynsym is None:
        return needs, exports_pyinit
    for index, symbol in enumerate(dynsym.iter_symbols()):
        undefined = symbol["st_shndx"] == "SHN_UNDEF"
        if not undefined and symbol.name.startswith("PyInit_"):
            exports_pyinit = True
        if not undefined or versym is None or index >= versym.num_symbols():
            continue
        ndx = versym.get_symbol(index)["ndx"]
        if not isinstance(ndx, int):
            continue  # VER_NDX_LOCAL / VER_NDX_GLOBAL: unversioned
        library_version = versions.get(ndx & 0x7FFF)
        if library_version is None:
            continue
        match = GLIBC_VERSION.match(library_version[1])
        if match:
            symbols = needs[parse_version(match.group(1))][1]
            if len(symbols) < SYMBOLS_PER_VERSION and symbol.name:
                symbols.append(symbol.name)
    return needs, exports_pyinit
