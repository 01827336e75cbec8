"""What a distribution the current layer lacks would weigh in it, measured by the build's own steps.

Install, import, prune, strip and compile exactly as the build does, so the figure is the build's, not an
estimate; cached per wheel sha256, rules, target, options and this code.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ci.cache_seal import sources_digest
from ci.config import Target
from ci.config_sections import BuildConfig
from ci.layer import bytecode, strip, verify
from ci.layer.bytecode import LAMBDA_SITE, compile_files, pyc_path
from ci.layer.wheels import CachedWheel, InstalledDistribution, install_wheels
from ci.site import rules
from ci.site.owners import BUILD_SITE, Owners
from ci.site.tree import globbed, walk_files

MEASURE_FORMAT = 1
# A shared library named like a module (pyarrow's libarrow_python.so): loaded by other modules, not imported.
NOT_A_MODULE = "does not define module export function"
_CODE = (
    Path(__file__),
    Path(str(strip.__file__)),
    Path(str(verify.__file__)),
    Path(__file__).resolve().parents[1] / "layer" / "install.py",
    Path(__file__).resolve().parents[1] / "layer" / "bytecode.py",
)


@dataclass(frozen=True)
class Measured:
    """One distribution as the build would ship it, before any bytecode is added."""

    name: str
    version: str
    wheel: str
    sha256: str
    files: dict[str, int]  # path relative to python/ -> bytes, after pruning and strip
    pyc: dict[str, int]  # .py path -> bytes of its unchecked-hash .pyc
    installed_bytes: int
    import_errors: dict[str, str] = field(default_factory=dict)  # fail even unpruned, beside the current layer
    from_cache: bool = False

    @property
    def bytes(self) -> int:
        return sum(self.files.values())

    def bytecode_for(self, modules: set[str] | None) -> int:
        """Bytes of the .pyc the build would add: for `modules` (.py paths), or for every module if None."""
        return sum(size for source, size in self.pyc.items() if modules is None or source in modules)


@dataclass(frozen=True)
class Measurer:
    python: str
    target: Target
    options: BuildConfig
    cache: Path  # the build's cache directory (strip, bytecode, pyc stores are shared with it)
    scratch: Path  # where wheels are installed for measuring (build/what-if/)
    base_site: Callable[[], Path]  # the current layer's python/, unpacked on first use

    @property
    def setting_key(self) -> str:
        """Everything but the wheel that decides a measurement."""
        parts = [
            rules.fingerprint(self.options.prune),
            repr(self.options.keep),
            repr(self.options.remove),
            self.target.runtime.name,
            self.target.architecture,
            self.target.glibc,
            sources_digest(*_CODE),
            str(MEASURE_FORMAT),
        ]
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]

    def measure(self, wheels: Sequence[CachedWheel]) -> dict[str, Measured]:
        """Each wheel's distribution by canonical name; cached ones are read, the rest installed together."""
        found: dict[str, Measured] = {}
        todo = []
        for wheel in wheels:
            cached = self._load(wheel)
            if cached is None:
                todo.append(wheel)
            else:
                found[wheel.pin.name] = cached
        if todo:
            for measured, wheel in zip(self._measure(todo), sorted(todo, key=lambda w: w.pin.name), strict=True):
                self._store(wheel, measured)
                found[wheel.pin.name] = measured
        return found

    def _cache_file(self, wheel: CachedWheel) -> Path:
        return self.cache / "what-if" / f"{wheel.sha256[:32]}-{self.setting_key}.json"

    def _load(self, wheel: CachedWheel) -> Measured | None:
        path = self._cache_file(wheel)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        if data.get("sha256") != wheel.sha256:
            return None
        return Measured(**{**data, "from_cache": True})

    def _store(self, wheel: CachedWheel, measured: Measured) -> None:
        path = self._cache_file(wheel)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        partial.write_text(json.dumps({k: v for k, v in asdict(measured).items() if k != "from_cache"}))
        partial.replace(path)  # concurrent what-ifs share the cache: never a torn entry

    def tree(self, wheels: Sequence[CachedWheel]) -> Path:
        """python/ of these wheels as the build would ship them before bytecode: installed, pruned, stripped.

        Kept under scratch/trees/ (the last measurement of the same wheels left it there), for what needs the
        files themselves: the compact profile is measured by running the handler on them.
        """
        site = self._tree_dir(wheels)
        if not (site.parent / "done").is_file():
            self._prepare(site, wheels)
            (site.parent / "done").write_text("")
        return site

    def discard_trees(self) -> None:
        """Delete this process's kept trees (hundreds of MB for a large distribution)."""
        for tree in (self.scratch / "trees").glob(f"*-{os.getpid()}"):
            shutil.rmtree(tree, ignore_errors=True)

    def _tree_dir(self, wheels: Sequence[CachedWheel]) -> Path:
        """One per process and wheel set: a what-if beside this one never shares (or deletes) it."""
        key = hashlib.sha256("\0".join([*sorted(w.sha256 for w in wheels), self.setting_key]).encode()).hexdigest()
        return self.scratch / "trees" / f"{key[:16]}-{os.getpid()}" / BUILD_SITE

    def _prepare(self, site: Path, wheels: Sequence[CachedWheel]) -> tuple[list[InstalledDistribution], dict[str, str]]:
        """Install, import (keep what loads), remove, prune and strip, as the build does; the import errors."""
        if site.parent.exists():
            shutil.rmtree(site.parent)
        installed = install_wheels(list(wheels), site, unpacked=self.cache / "unpacked")
        errors: dict[str, str] = {}
        keep = globbed(site, self.options.keep)
        if platform.machine() == self.target.machine:  # imports prove nothing on another machine
            planned = rules.plan(site, self.options.prune)
            runner = verify.Runner(
                self.python, bytecode.for_target(self.cache, self.target.runtime.python), [self.base_site()]
            )
            verdict = verify.baseline(runner, site, [d.name for d in installed], planned, site.parent / "verdict.json")
            (site.parent / "verdict.json").unlink(missing_ok=True)
            keep |= verify.keep_set(verdict)
            errors = {name: error for name, error in verdict.failures.items() if NOT_A_MODULE not in error}
        rules.apply_removals(site, self.options.remove, self.options.keep, strict=False)
        rules.apply_rules(site, self.options.prune, keep)
        if rules.STRIP in self.options.prune:
            strip.strip_tree(site, self.cache / "strip", strip.dlopen_check(self.python))
        return installed, errors

    def _measure(self, wheels: Sequence[CachedWheel]) -> list[Measured]:
        """Prepare the wheels' tree (kept for `tree`), then read each distribution's files and compile its .pyc."""
        self.scratch.mkdir(parents=True, exist_ok=True)
        site = self._tree_dir(wheels)
        (site.parent / "done").unlink(missing_ok=True)
        installed, errors = self._prepare(site, wheels)
        owners = Owners.of_installed((d.name, d.files) for d in installed)
        files: dict[str, dict[str, int]] = {d.name: {} for d in installed}
        for path in walk_files(site):
            rel = path.relative_to(site).as_posix()
            owner = owners.distribution(f"{BUILD_SITE}/{rel}")
            if owner in files:
                files[owner][rel] = path.stat().st_size
        sources = sorted(rel for shipped in files.values() for rel in shipped if rel.endswith(".py"))
        version = self.target.runtime.python
        # Into the tree's __pycache__/ (whoever reads the tree as the build leaves it before bytecode skips them).
        compile_files(self.python, version, site, sources, self.cache / "bytecode", False, LAMBDA_SITE)
        pyc = {rel: (site / pyc_path(rel, version, False)).stat().st_size for rel in sources}
        (site.parent / "done").write_text("")
        return [
            Measured(
                name=d.name,
                version=d.version,
                wheel=d.wheel,
                sha256=wheel.sha256,
                files=dict(sorted(files[d.name].items())),
                pyc={rel: pyc[rel] for rel in sorted(files[d.name]) if rel in pyc},
                installed_bytes=d.bytes,
                import_errors={name: error for name, error in errors.items() if _owned(name, files[d.name], d.name)},
            )
            for d, wheel in zip(installed, sorted(wheels, key=lambda w: w.pin.name), strict=True)
        ]


def _owned(item: str, files: dict[str, int], distribution: str) -> bool:
    """Is the failing check `item` (a module or a distribution's metadata) about this distribution?"""
    top = item.split(".")[0]
    return item == distribution or any(rel.split("/")[0] in (top, f"{top}.py") for rel in files)
