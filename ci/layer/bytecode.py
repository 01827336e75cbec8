"""Bytecode: the unchecked-hash .pyc the layer ships (Lambda's /opt is read-only: without them every cold start
compiles again, docs/design.md) and the store the checking interpreters share. Both caches are keyed by content
and used only under this machine's seal, since what they hold is executed."""

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ci import cache_seal
from ci.arch.interpreter import run_isolated
from ci.errors import CheckFailedError
from ci.site.rules import link_or_copy

LAMBDA_SITE = "/opt/python"  # where the layer's python/ is mounted: tracebacks name real paths
_SEAL = "bytecode"  # the cache seal's purpose: what the layer ships

_COMPILE = r"""
import json, py_compile, sys
for source, target, shown in json.load(open(JOBS)):
    py_compile.compile(source, cfile=target, dfile=shown, doraise=True,
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
print("compiled")
"""


def cache_tag(python_version: str) -> str:
    return "cpython-" + python_version.replace(".", "")


def pyc_path(rel: str, python_version: str, sourceless: bool) -> str:
    """Where the pyc of `rel` (a .py, relative to the site) goes: __pycache__/x.cpython-311.pyc or x.pyc."""
    path = PurePosixPath(rel)
    if sourceless:
        return str(path.with_suffix(".pyc"))
    return str(path.parent / "__pycache__" / f"{path.stem}.{cache_tag(python_version)}.pyc")


def compile_files(
    python: str, python_version: str, site: Path, sources: list[str], cache: Path, sourceless: bool, shown_root: str
) -> tuple[int, int]:
    """Compile `sources` in the target interpreter (its magic number) into the tree; (files, bytes) written."""
    cache.mkdir(parents=True, exist_ok=True)
    compiler = _COMPILE.encode()  # how it compiles (invalidation mode, options) decides the bytes too
    entries: dict[str, list[str]] = {}  # key -> names of its entries, "<key>.<seal>.pyc"
    for name in (path.name for path in cache.iterdir()):
        if name.endswith(".pyc") and name.count(".") == 2:
            entries.setdefault(name.split(".", 1)[0], []).append(name)
    jobs, placed = [], []
    for rel in sources:
        source = site / rel
        shown = f"{shown_root}/{rel}"
        parts = [source.read_bytes(), shown.encode(), python_version.encode(), compiler]
        key = hashlib.sha256(b"\0".join(parts)).hexdigest()
        names = entries.get(key, [])
        cached = cache_seal.sealed_entry(_SEAL, key, ((cache / n, n.split(".")[1]) for n in names))
        if cached is None:
            cached = cache / f"{key}.{os.getpid()}.partial"
            jobs.append([str(source), str(cached), shown])
        placed.append((cached, site / pyc_path(rel, python_version, sourceless)))
    if jobs:
        listing = cache / f"jobs-{os.getpid()}.json"
        listing.write_text(json.dumps(jobs))
        try:
            run = run_isolated(python, [], _COMPILE.replace("JOBS", repr(str(listing))), timeout=900)
        finally:
            listing.unlink()
        if run.returncode != 0:
            raise CheckFailedError(
                f"compiling bytecode failed in the target Python:\n{run.stderr.strip()[-800:]}",
                'set build.bytecode = "none" and report the file named',
            )
    size = 0
    for cached, target in placed:
        entry = cached
        if cached.suffix == ".partial":  # compiled just now: into the cache under this machine's seal
            key = cached.name.split(".", 1)[0]
            entry = cached.replace(cache / f"{key}.{cache_seal.seal_file(_SEAL, key, cached)}.pyc")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)  # a new file: an installed one may be a hard link into the cache
        link_or_copy(entry, target)
        target.chmod(0o644)
        size += target.stat().st_size
    return len(placed), size


_STORE_SEAL = "pyc-store"  # the cache seal's purpose: what the checking interpreters execute
_HEADER = 16  # magic, flags, mtime, size: a timestamp .pyc (PEP 552 flags 0)
# sha256 per (path, device, inode, size, mtime, ctime): ctime, the kernel's, catches a reset mtime.
_digests: dict[tuple[str, int, int, int, int, int], str] = {}


@dataclass
class Run:
    prefix: Path
    reused: int = 0
    compiled: int = 0


@dataclass(frozen=True)
class PycStore:
    directory: Path  # <cache>/pyc: by-source/ (layer modules), outside/ (the interpreter's own), runs/ (under way)
    tag: str  # the target interpreter's cache tag, "cpython-311"

    @contextmanager
    def run(self, roots: Sequence[Path]) -> Iterator[Run]:
        entries, outside, runs = (self.directory / name for name in ("by-source", "outside", "runs"))
        for directory in (entries, outside, runs):
            directory.mkdir(parents=True, exist_ok=True)
        for orphan in runs.iterdir():  # a run's prefix its process (killed) could not remove
            pid = orphan.name.split("-", 1)[0]
            if pid.isdigit() and not Path("/proc", pid).exists():
                shutil.rmtree(orphan, ignore_errors=True)
        run = Run(Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=runs)))
        roots = [root.resolve() for root in roots]
        try:
            sealed: dict[str, list[str]] = {}  # "<sha256>-<mtime>" -> its entries' names
            for name in (path.name for path in entries.iterdir()):
                sealed.setdefault(name.split(".", 1)[0], []).append(name)
            for root in roots:
                self._offer(run, root, entries, sealed)
            _offer_outside(outside, run.prefix)
            yield run
            self._keep(run, roots, entries, outside)
        finally:
            shutil.rmtree(run.prefix, ignore_errors=True)

    def _stem(self, source: Path, stat: os.stat_result) -> str:
        """What names a layer module's entries: its source's sha256 and mtime; the entry adds its seal and tag."""
        key = (str(source), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
        if key not in _digests:
            _digests[key] = hashlib.sha256(source.read_bytes()).hexdigest()
        return f"{_digests[key]}-{int(stat.st_mtime)}"

    def _offer(self, run: Run, root: Path, entries: Path, sealed: dict[str, list[str]]) -> None:
        for directory, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for name in files:
                if not name.endswith(".py"):
                    continue
                source = Path(directory) / name
                stem = self._stem(source, source.stat())
                parts = [name.split(".") for name in sealed.get(stem, [])]  # "<stem>.<seal>.<tag>.pyc"
                named = [(entries / ".".join(p), p[1]) for p in parts if len(p) == 4 and p[2] == self.tag]
                entry = cache_seal.sealed_entry(_STORE_SEAL, stem, named)
                if entry is None:
                    continue
                pyc = run.prefix / source.parent.relative_to(source.anchor) / f"{source.stem}.{self.tag}.pyc"
                pyc.parent.mkdir(parents=True, exist_ok=True)
                os.link(entry, pyc)
                run.reused += 1

    def _keep(self, run: Run, roots: Sequence[Path], entries: Path, outside: Path) -> None:
        """Add what the run compiled: a layer module's .pyc if its header matches the source as it is now."""
        suffix = f".{self.tag}.pyc"
        for directory, _dirs, files in os.walk(run.prefix):
            for name in files:
                pyc = Path(directory) / name
                if not name.endswith(suffix) or pyc.stat().st_nlink > 1:  # offered, or not bytecode
                    continue
                rel = pyc.relative_to(run.prefix)
                source = Path("/") / rel.parent / (name[: -len(suffix)] + ".py")
                if not any(source.is_relative_to(root) for root in roots):
                    # The interpreter's own (an emulated one's paths are its sysroot's): kept by path.
                    _link_atomically(pyc, outside / f"{rel}.{cache_seal.seal_file(_STORE_SEAL, rel.as_posix(), pyc)}")
                    run.compiled += 1
                    continue
                if not source.is_file():
                    continue
                stat = source.stat()
                with pyc.open("rb") as file:
                    header = file.read(_HEADER)
                if len(header) < _HEADER:
                    continue
                flags, mtime, size = (int.from_bytes(header[i : i + 4], "little") for i in (4, 8, 12))
                if flags != 0 or mtime != int(stat.st_mtime) & 0xFFFFFFFF or size != stat.st_size & 0xFFFFFFFF:
                    continue  # not a timestamp .pyc, or the source changed after it was compiled
                stem = self._stem(source, stat)
                _link_atomically(pyc, entries / f"{stem}.{cache_seal.seal_file(_STORE_SEAL, stem, pyc)}.{self.tag}.pyc")
                run.compiled += 1


def _offer_outside(outside: Path, prefix: Path) -> None:
    """Link the interpreter's own sealed .pyc ("<path>.<seal>") under the prefix at <path>; others are deleted."""
    for directory, _dirs, files in os.walk(outside):
        for name in sorted(files):
            kept, _dot, mark = name.rpartition(".")
            entry = Path(directory) / name
            rel = entry.relative_to(outside).with_name(kept)
            target = prefix / rel
            if not kept.endswith(".pyc") or target.exists():
                continue
            if cache_seal.sealed_entry(_STORE_SEAL, rel.as_posix(), [(entry, mark)]) is not None:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(entry, target)


def _link_atomically(file: Path, name: Path) -> None:
    """`name` becomes `file` at once: builds running side by side share the store."""
    name.parent.mkdir(parents=True, exist_ok=True)
    partial = name.with_name(f"{name.name}.{os.getpid()}.partial")
    partial.unlink(missing_ok=True)
    os.link(file, partial)
    partial.replace(name)


def for_target(cache: Path, python_version: str) -> PycStore:
    return PycStore(cache / "pyc", cache_tag(python_version))
