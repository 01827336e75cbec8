"""ABI check of a layer tree: will every binary in it load on the Lambda target? Judges each ELF file's loader
facts (pyelftools: machine, class, GLIBC versions needed, PyInit_* exports) and refuses Windows/macOS binaries."""

import re
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection, GNUVerSymSection
from elftools.elf.sections import SymbolTableSection

from ci.config import Target, version_tuple
from ci.site.owners import Owners
from ci.site.rules import in_vendored_libs, walk_files

ELF_MAGIC = b"\x7fELF"
GLIBC_VERSION = re.compile(r"^GLIBC_(\d+(?:\.\d+)+)$")
MACHINES = {"x86_64": "EM_X86_64", "aarch64": "EM_AARCH64"}  # wheel/uname spelling -> e_machine
SYMBOLS_PER_VERSION = 5  # enough to name the culprit in a message, small enough for a report
# An extension module's filename tag: name.cpython-311-x86_64-linux-gnu.so, name.abi3.so, name.so
TAGGED_EXTENSION = re.compile(r"\.((?:cpython|pypy|graalpy)[^.]*|abi3|cp\d+[^.]*)\.(so|pyd)$")

# A wrong-platform wheel (or a laptop's site-packages) ships .pyd/.dll files or Mach-O .so: they fail only at import.
FOREIGN_SUFFIXES = {".pyd": "Windows", ".dll": "Windows", ".exe": "Windows", ".dylib": "macOS"}
MACHO_MAGICS = {b"\xfe\xed\xfa\xce", b"\xce\xfa\xed\xfe", b"\xfe\xed\xfa\xcf", b"\xcf\xfa\xed\xfe"}
FAT_MAGICS = {b"\xca\xfe\xba\xbe", b"\xbe\xba\xfe\xca"}  # universal binaries (FAT_MAGIC / FAT_CIGAM)
# 0xcafebabe is also a Java class (next word: its version, >= 45); a universal binary has a handful of arches there.
MAX_FAT_ARCHES = 30
HEADER_BYTES = 64


class ElfReadError(Exception):
    """The file starts like an ELF file but cannot be parsed (truncated or corrupt)."""


class ElfFacts(NamedTuple):
    machine: str  # pyelftools' e_machine name, e.g. EM_X86_64
    elf_class: int  # 32 | 64
    little_endian: bool
    glibc_needs: dict[tuple[int, ...], str]  # GLIBC version -> library providing it


@dataclass(frozen=True)
class Violation:
    path: str  # relative to the checked root, posix
    distribution: str | None
    rule: str  # foreign-binary | architecture | glibc | python-tag | unreadable-elf
    message: str


@dataclass
class AbiScan:
    files: int = 0
    elf_files: int = 0
    extension_modules: int = 0
    machines: dict[str, int] = field(default_factory=dict)  # e_machine -> ELF files (one key when all fit)
    max_glibc: tuple[int, ...] | None = None
    max_glibc_file: str | None = None
    glibc_by_distribution: dict[str, tuple[int, ...]] = field(default_factory=dict)
    violations: list[Violation] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {
            "machines": dict(sorted(self.machines.items())),
            "max_glibc": version_text(self.max_glibc) if self.max_glibc else None,
            "glibc_by_distribution": {name: version_text(v) for name, v in sorted(self.glibc_by_distribution.items())},
        }


def scan_tree(root: Path, target: Target) -> AbiScan:
    owners = Owners.of_tree(root)
    scan = AbiScan()
    for path in walk_files(root):
        rel = path.relative_to(root).as_posix()
        dist = owners.distribution(rel) or owners.guess(rel)
        scan.files += 1
        try:
            for rule, message in _problems(scan, path, rel, dist, target):
                scan.violations.append(Violation(rel, dist, rule, message))
        except ElfReadError as exc:
            scan.violations.append(Violation(rel, dist, "unreadable-elf", f"cannot be read as ELF ({exc})"))
    return scan


def _problems(scan: AbiScan, path: Path, rel: str, dist: str | None, target: Target) -> Iterator[tuple[str, str]]:
    """(rule, message) for each reason the file would not load, noting its facts in `scan`; raises ElfReadError."""
    runtime = f"{target.runtime.name} {target.architecture}, {target.runtime.os}"
    with path.open("rb") as handle:
        head = handle.read(HEADER_BYTES)
    if (kind := foreign_kind(path, head)) is not None:
        yield "foreign-binary", f"{kind}: it cannot load on Linux ({runtime})"
        return
    if head[:4] != ELF_MAGIC:
        if path.name.endswith((".so", ".pyd")):
            yield "unreadable-elf", f"named like an extension module but is not an ELF file ({runtime})"
        return
    scan.elf_files += 1
    facts = read_elf(path)
    scan.machines[facts.machine] = scan.machines.get(facts.machine, 0) + 1
    expected = MACHINES[target.machine]
    if facts.machine != expected or facts.elf_class != 64 or not facts.little_endian:
        got = f"{facts.machine}, ELFCLASS{facts.elf_class}, {'little' if facts.little_endian else 'big'}-endian"
        needs = f"{target.runtime.name} {target.architecture} needs {expected}, ELFCLASS64"
        fix = f"install the {target.machine} wheel (is target.architecture right?)"
        yield "architecture", f"built for {got}; {needs}: {fix}"
    newest = max(facts.glibc_needs, default=None)
    if newest is not None and newest[:2] > target.glibc_tuple:
        library = facts.glibc_needs[newest]
        symbols = glibc_symbols(path, newest)
        culprit = f"{library}: {', '.join(symbols)}" if symbols else library
        has = f"{target.runtime.os} has glibc {target.glibc}"
        fix = f"pin a version with a manylinux wheel for glibc <= {target.glibc}"
        yield "glibc", f"needs GLIBC_{version_text(newest)} ({culprit}) but {has}: {fix}"
    if newest is not None:
        if scan.max_glibc is None or newest > scan.max_glibc:
            scan.max_glibc, scan.max_glibc_file = newest, rel
        key = dist or "(unknown)"
        scan.glibc_by_distribution[key] = max(newest, scan.glibc_by_distribution.get(key, ()))
    # A module is tagged, or exports PyInit_* outside auditwheel's *.libs/; libfoo.so.1 and vendored libs load by path.
    match = TAGGED_EXTENSION.search(path.name)
    if match is None and (in_vendored_libs(rel) or not path.name.endswith(".so") or not exports_pyinit(path)):
        return
    scan.extension_modules += 1
    expected = target.extension_suffix
    if match is None:
        untagged = f"untagged extension module (exports PyInit_*, no '{expected}' tag): nothing proves it was built"
        yield "python-tag", f"{untagged} for Python {target.runtime.python}; install a wheel with tagged modules"
    elif (tag := match.group(1)) not in (expected, "abi3"):
        tagged = f"extension module tagged {tag!r}, the target imports only '{expected}' or 'abi3'"
        python = target.runtime.python_tag
        yield "python-tag", f"{tagged}: the wheel was built for another Python; install the {python} wheel"


def foreign_kind(path: Path, head: bytes) -> str | None:
    if head[:2] == b"MZ" and len(head) >= 0x40:  # and e_lfanew points at "PE\0\0": text files may start with MZ
        with path.open("rb") as handle:
            handle.seek(struct.unpack("<I", head[0x3C:0x40])[0])
            if handle.read(4) == b"PE\0\0":
                return "Windows PE executable"
    if head[:4] in MACHO_MAGICS:
        return "macOS Mach-O binary"
    if head[:4] in FAT_MAGICS and len(head) >= 8:
        order = ">" if head[:4] == b"\xca\xfe\xba\xbe" else "<"
        (count,) = struct.unpack(f"{order}I", head[4:8])
        if 0 < count < MAX_FAT_ARCHES:
            return "macOS universal (fat) Mach-O binary"
    system = FOREIGN_SUFFIXES.get(path.suffix.lower())
    return None if system is None else f"{system} binary by its name ({path.suffix})"


def is_elf(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) == ELF_MAGIC


def version_text(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


def read_elf(path: Path) -> ElfFacts:
    """Headers and version needs only (fast: no symbol table walk); raises ElfReadError."""
    with _open(path) as elf:
        needs: dict[tuple[int, ...], str] = {}
        for library, name in _version_names(elf).values():
            if match := GLIBC_VERSION.match(name):
                needs.setdefault(version_tuple(match.group(1)), library)
        return ElfFacts(str(elf.header["e_machine"]), elf.elfclass, elf.little_endian, needs)


def glibc_symbols(path: Path, version: tuple[int, ...]) -> list[str]:
    """The first few undefined symbols bound to GLIBC_`version` (names the culprit in a message)."""
    found: list[str] = []
    wanted = f"GLIBC_{version_text(version)}"
    with _open(path) as elf:
        names = _version_names(elf)
        dynsym = _dynsym(elf)
        versym = next((s for s in elf.iter_sections() if isinstance(s, GNUVerSymSection)), None)
        if dynsym is None or versym is None:
            return found
        for index, symbol in enumerate(dynsym.iter_symbols()):
            if symbol["st_shndx"] != "SHN_UNDEF" or index >= versym.num_symbols():
                continue
            ndx = versym.get_symbol(index)["ndx"]
            if not isinstance(ndx, int) or (ndx & 0x7FFF) not in names:
                continue  # VER_NDX_LOCAL / VER_NDX_GLOBAL: unversioned
            if names[ndx & 0x7FFF][1] == wanted and symbol.name and len(found) < SYMBOLS_PER_VERSION:
                found.append(symbol.name)
    return found


def exports_pyinit(path: Path) -> bool:
    with _open(path) as elf:
        dynsym = _dynsym(elf)
        return dynsym is not None and any(
            symbol.name.startswith("PyInit_") and symbol["st_shndx"] != "SHN_UNDEF" for symbol in dynsym.iter_symbols()
        )


@contextmanager
def _open(path: Path) -> Iterator[ELFFile]:
    try:
        with path.open("rb") as handle:
            yield ELFFile(handle)
    except Exception as exc:  # ELFError, OSError, and the struct errors pyelftools raises on truncated files
        raise ElfReadError(f"{type(exc).__name__}: {exc}") from exc


def _dynsym(elf: ELFFile) -> SymbolTableSection | None:
    return next((s for s in elf.iter_sections() if isinstance(s, SymbolTableSection) and s.name == ".dynsym"), None)


def _version_names(elf: ELFFile) -> dict[int, tuple[str, str]]:
    """vna_other index -> (library, version name) for every version this file needs (.gnu.version_r)."""
    names: dict[int, tuple[str, str]] = {}
    for section in elf.iter_sections():
        if isinstance(section, GNUVerNeedSection):
            for verneed, auxiliaries in section.iter_versions():
                for aux in auxiliaries:
                    names[int(aux["vna_other"])] = (str(verneed.name), str(aux.name))
    return names
