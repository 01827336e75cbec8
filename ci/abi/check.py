"""Judge a layer tree against the target: architecture, glibc, Python tag, foreign binaries.

`check_tree` is the contract the layer build calls; `scan_tree` also returns the facts for the
report (ELF count, the newest GLIBC needed overall and per distribution).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ci.abi.elf import (
    ELF_MAGIC,
    MACHINES,
    ElfFacts,
    ElfReadError,
    exports_pyinit,
    glibc_symbols,
    read_elf,
    version_text,
)
from ci.abi.foreign import HEADER_BYTES, foreign_kind
from ci.config import Target
from ci.site.owners import Owners
from ci.site.tree import in_vendored_libs, walk_files

# An extension module's filename tag: name.cpython-311-x86_64-linux-gnu.so, name.abi3.so, name.so
TAGGED_EXTENSION = re.compile(r"\.((?:cpython|pypy|graalpy)[^.]*|abi3|cp\d+[^.]*)\.(so|pyd)$")
RULES = ("foreign-binary", "architecture", "glibc", "python-tag", "unreadable-elf")


@dataclass(frozen=True)
class Violation:
    path: str  # relative to the checked root, posix
    distribution: str | None
    rule: str  # one of RULES
    message: str


@dataclass
class AbiScan:
    """Everything the check saw: violations plus facts for build/reports/abi.json."""

    files: int = 0
    elf_files: int = 0
    extension_modules: int = 0
    machines: dict[str, int] = field(default_factory=dict)  # e_machine -> ELF files (one key when all fit)
    violations: list[Violation] = field(default_factory=list)
    max_glibc: tuple[int, ...] | None = None
    max_glibc_file: str | None = None
    glibc_by_distribution: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "elf_files": self.elf_files,
            "extension_modules": self.extension_modules,
            "machines": dict(sorted(self.machines.items())),
            "max_glibc": version_text(self.max_glibc) if self.max_glibc else None,
            "max_glibc_file": self.max_glibc_file,
            "glibc_by_distribution": {
                name: version_text(version) for name, version in sorted(self.glibc_by_distribution.items())
            },
            "violations": [asdict(v) for v in self.violations],
        }


def check_tree(root: Path, target: Target) -> list[Violation]:
    """Every reason a file under `root` would not load on `target` (empty list: all good)."""
    return scan_tree(root, target).violations


def scan_tree(root: Path, target: Target) -> AbiScan:
    owners = Owners.of_tree(root)
    scan = AbiScan()
    for path in walk_files(root):
        rel = path.relative_to(root).as_posix()
        scan.files += 1
        with path.open("rb") as handle:
            head = handle.read(HEADER_BYTES)
        dist = owners.distribution(rel) or owners.guess(rel)

        def report(rule: str, message: str, rel: str = rel, dist: str | None = dist) -> None:
            scan.violations.append(Violation(rel, dist, rule, message))

        kind = foreign_kind(path, head)
        if kind is not None:
            report("foreign-binary", f"{kind}: it cannot load on Linux ({_runtime(target)})")
            continue
        is_extension = _is_extension_name(path.name)
        if head[:4] != ELF_MAGIC:
            if is_extension:
                report("unreadable-elf", f"named like an extension module but is not an ELF file ({_runtime(target)})")
            continue
        scan.elf_files += 1
        try:
            facts = read_elf(path)
        except ElfReadError as exc:
            report("unreadable-elf", f"cannot be read as ELF ({exc})")
            continue
        scan.machines[facts.machine] = scan.machines.get(facts.machine, 0) + 1
        try:
            for rule, message in _judge_elf(path, facts, target):
                report(rule, message)
            if facts.max_glibc is not None:
                _note_glibc(scan, rel, dist, facts.max_glibc)
            if _is_module(path, rel):
                scan.extension_modules += 1
                problem = _tag_problem(path.name, target)
                if problem is not None:
                    report("python-tag", problem)
        except ElfReadError as exc:
            report("unreadable-elf", f"cannot be read as ELF ({exc})")
    return scan


def _runtime(target: Target) -> str:
    return f"{target.runtime.name} {target.architecture}, {target.runtime.os}"


def _is_extension_name(name: str) -> bool:
    return name.endswith((".so", ".pyd"))


def _judge_elf(path: Path, facts: ElfFacts, target: Target) -> list[tuple[str, str]]:
    problems = []
    expected = MACHINES[target.machine]
    if facts.machine != expected or facts.elf_class != 64 or not facts.little_endian:
        got = f"{facts.machine}, ELFCLASS{facts.elf_class}, {'little' if facts.little_endian else 'big'}-endian"
        problems.append(
            (
                "architecture",
                f"built for {got}; {target.runtime.name} {target.architecture} needs {expected}, ELFCLASS64: "
                f"install the {target.machine} wheel (is target.architecture right?)",
            )
        )
    limit = target.glibc_tuple
    too_new = sorted(version for version in facts.glibc_needs if version[:2] > limit)
    if too_new:
        newest = too_new[-1]
        library = facts.glibc_needs[newest]
        symbols = glibc_symbols(path, {newest})[newest]
        culprit = f" ({library}: {', '.join(symbols)})" if symbols else f" ({library})"
        problems.append(
            (
                "glibc",
                f"needs GLIBC_{version_text(newest)}{culprit} but {target.runtime.os} has glibc {target.glibc}: "
                f"pin a version with a manylinux wheel for glibc <= {target.glibc}",
            )
        )
    return problems


def _is_module(path: Path, rel: str) -> bool:
    """An importable extension module: tagged by name, or exporting PyInit_* outside auditwheel's *.libs/."""
    if TAGGED_EXTENSION.search(path.name):
        return True
    if in_vendored_libs(rel) or not path.name.endswith(".so"):
        return False  # a vendored or versioned shared library (libfoo.so.1), loaded by path
    return exports_pyinit(path)


def _tag_problem(name: str, target: Target) -> str | None:
    """Why this extension module's filename tag does not fit the target, or None."""
    expected = target.extension_suffix
    match = TAGGED_EXTENSION.search(name)
    if match is not None:
        tag = match.group(1)
        if tag in (expected, "abi3"):
            return None
        return (
            f"extension module tagged {tag!r}, the target imports only '{expected}' or 'abi3': "
            f"the wheel was built for another Python; install the {target.runtime.python_tag} wheel"
        )
    return (
        f"untagged extension module (exports PyInit_*, no '{expected}' tag): nothing proves it was built "
        f"for Python {target.runtime.python}; install a wheel with tagged modules"
    )


def _note_glibc(scan: AbiScan, rel: str, dist: str | None, version: tuple[int, ...]) -> None:
    if scan.max_glibc is None or version > scan.max_glibc:
        scan.max_glibc, scan.max_glibc_file = version, rel
    key = dist or "(unknown)"
    if version > scan.glibc_by_distribution.get(key, ()):
        scan.glibc_by_distribution[key] = version
