"""The facts of one ELF file that decide whether it loads on the target (via pyelftools).

Only what the loader cares about: machine and class, the GLIBC symbol versions it needs (a newer one
fails with "version `GLIBC_2.28' not found"), and whether it is a Python extension (exports PyInit_*).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
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
    glibc_needs: dict[tuple[int, ...], str] = field(default_factory=dict)  # GLIBC version -> library providing it

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
    """Headers and version needs only (fast: no symbol table walk); raises ElfReadError."""
    with _open(path) as elf:
        needs: dict[tuple[int, ...], str] = {}
        for library, name in _version_names(elf).values():
            match = GLIBC_VERSION.match(name)
            if match:
                needs.setdefault(parse_version(match.group(1)), library)
        return ElfFacts(
            machine=str(elf.header["e_machine"]),
            elf_class=elf.elfclass,
            little_endian=elf.little_endian,
            elf_type=str(elf.header["e_type"]),
            glibc_needs=needs,
        )


def glibc_symbols(path: Path, versions: set[tuple[int, ...]]) -> dict[tuple[int, ...], list[str]]:
    """The first few undefined symbols bound to each of `versions` (names the culprit in a message)."""
    found: dict[tuple[int, ...], list[str]] = {version: [] for version in versions}
    with _open(path) as elf:
        names = _version_names(elf)
        dynsym, versym = _dynsym(elf), _versym(elf)
        if dynsym is None or versym is None:
            return found
        for index, symbol in enumerate(dynsym.iter_symbols()):
            if symbol["st_shndx"] != "SHN_UNDEF" or index >= versym.num_symbols():
                continue
            ndx = versym.get_symbol(index)["ndx"]
            if not isinstance(ndx, int) or (ndx & 0x7FFF) not in names:
                continue  # VER_NDX_LOCAL / VER_NDX_GLOBAL: unversioned
            match = GLIBC_VERSION.match(names[ndx & 0x7FFF][1])
            version = parse_version(match.group(1)) if match else None
            if version in found and len(found[version]) < SYMBOLS_PER_VERSION and symbol.name:
                found[version].append(symbol.name)
    return found


def exports_pyinit(path: Path) -> bool:
    """True for a Python extension module: it defines PyInit_<name> for the import system."""
    with _open(path) as elf:
        dynsym = _dynsym(elf)
        if dynsym is None:
            return False
        return any(
            symbol.name.startswith("PyInit_") and symbol["st_shndx"] != "SHN_UNDEF" for symbol in dynsym.iter_symbols()
        )


@contextmanager
def _open(path: Path) -> Iterator[ELFFile]:
    try:
        with path.open("rb") as handle:
            yield ELFFile(handle)
    except (ELFError, OSError) as exc:
        raise ElfReadError(f"{type(exc).__name__}: {exc}") from exc
    except ElfReadError:
        raise
    except Exception as exc:  # truncated files make pyelftools' struct parser raise its own errors
        raise ElfReadError(f"{type(exc).__name__}: {exc}") from exc


def _dynsym(elf: ELFFile) -> SymbolTableSection | None:
    return next((s for s in elf.iter_sections() if isinstance(s, SymbolTableSection) and s.name == ".dynsym"), None)


def _versym(elf: ELFFile) -> GNUVerSymSection | None:
    return next((s for s in elf.iter_sections() if isinstance(s, GNUVerSymSection)), None)


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
