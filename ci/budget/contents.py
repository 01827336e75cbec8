"""What is in a zip Lambda unpacks: its entries as Lambda sizes them, which distribution shipped each
file and what kind of file it is, and which files an import trace covers."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ci.budget.model import TRACE_SMOKE
from ci.errors import PipelineError
from ci.site.owners import Owners, canonical
from ci.site.tree import in_vendored_libs
from ci.zipsafe import open_zip


@dataclass(frozen=True)
class Entry:
    path: str  # as stored in the zip, e.g. python/numpy/__init__.py
    unzipped_bytes: int  # ZipInfo.file_size
    zipped_bytes: int  # ZipInfo.compress_size


@dataclass(frozen=True)
class ZipContents:
    """One zip Lambda unpacks: the function code or a layer."""

    name: str  # how reports call it: function.zip, layer.zip, or an extra layer's file name
    kind: str  # function | layer | extra layer
    path: Path
    entries: tuple[Entry, ...]  # files only, in zip order
    archive_bytes: int  # size of the .zip file itself

    @property
    def unzipped_bytes(self) -> int:
        return sum(entry.unzipped_bytes for entry in self.entries)

    @property
    def zipped_bytes(self) -> int:
        return sum(entry.zipped_bytes for entry in self.entries)


def read_zip(path: Path, name: str, kind: str, how_to_make: str, shown: Path | None = None) -> ZipContents:
    """The file entries of `path`; a missing or unreadable zip is an error naming the file
    (`shown`: the artifact `path` is a snapshot of, named in messages)."""
    if not path.is_file():
        raise PipelineError(f"{shown or path} not found: the budget needs the {name} Lambda will unpack", how_to_make)
    with open_zip(path, how_to_make, shown) as archive:  # refuses links, duplicates and escaping names
        files = archive.files
    entries = tuple(Entry(info.filename, info.file_size, info.compress_size) for info in files)
    return ZipContents(name, kind, path, entries, path.stat().st_size)


LAYER_PREFIX = "python/"
UNATTRIBUTED = "(unattributed)"

EXTENSION_MODULES = "extension modules"
VENDORED_LIBRARIES = "vendored shared libraries"
PYTHON_SOURCE = "Python source"
BYTECODE = "bytecode"
DATA = "data"
METADATA = "metadata"
CATEGORIES = (EXTENSION_MODULES, VENDORED_LIBRARIES, PYTHON_SOURCE, BYTECODE, DATA, METADATA)

_SHARED_OBJECT = re.compile(r"\.so(\.\d+)*$")


def category(path: str) -> str:
    """One of CATEGORIES. Metadata and vendored libraries are judged by folder, the rest by suffix."""
    folders = path.split("/")[:-1]
    name = path.rsplit("/", 1)[-1]
    if any(folder.endswith((".dist-info", ".egg-info")) for folder in folders):
        return METADATA
    if in_vendored_libs(path):
        return VENDORED_LIBRARIES
    if name.endswith(".pyc"):
        return BYTECODE
    if name.endswith((".py", ".pyi")):
        return PYTHON_SOURCE
    if _SHARED_OBJECT.search(name):
        return EXTENSION_MODULES
    return DATA


def attribute(
    layer: ZipContents, top_level: Mapping[str, str], names: Sequence[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """Each layer path's distribution by ci.site.owners' evidence, spelled as the build report does when it can
    ("(unattributed)" when no evidence claims it), and each distribution's version from its *.dist-info name."""
    display = {canonical(name): name for name in names}

    def spelled(distribution: str) -> str:
        return display.setdefault(canonical(distribution), canonical(distribution))

    paths = [entry.path for entry in layer.entries]
    with open_zip(layer.path, "rebuild it: `python -m ci build`") as archive:  # one opening for every read
        owners = Owners.of_entries(paths, archive.read, top_level=top_level, names=names)
    site = LAYER_PREFIX.rstrip("/")
    versions = {spelled(d.name): d.version for d in owners.dists if d.site == site and d.version}
    owner = {}
    for path in paths:
        found = owners.distribution(path) if path.startswith(LAYER_PREFIX) else None
        owner[path] = UNATTRIBUTED if found is None else spelled(found)
    return owner, versions


@dataclass(frozen=True)
class ImportTrace:
    """What the handler really imported: smoke.json's "import_trace", or build.json's when the build
    traced the handler answering the committed events on this very layer (no smoke report yet)."""

    report: str
    same_layer: bool
    files: list[str]
    distributions: dict[str, dict[str, int]]
    source: str = TRACE_SMOKE  # TRACE_SMOKE | TRACE_BUILD


_PYC_IN_CACHE = re.compile(r"^(?P<dir>.*?)__pycache__/(?P<stem>[^/.]+)\.[^/]*\.pyc$")


def module_key(path: str) -> str | None:
    """python/a/b/c for python/a/b/c.py, python/a/b/__pycache__/c.cpython-311.pyc and python/a/b/c.pyc."""
    match = _PYC_IN_CACHE.match(path)
    if match:
        return match["dir"] + match["stem"]
    for suffix in (".pyc", ".py"):
        if path.endswith(suffix):
            return path[: -len(suffix)]
    return None


def traced_paths(trace: ImportTrace, entries: list[Entry]) -> set[str]:
    """Layer paths the trace saw; a module's .pyc is read when it is imported, so it counts too."""
    traced = {path if path.startswith(LAYER_PREFIX) else LAYER_PREFIX + path.lstrip("/") for path in trace.files}
    modules = {module_key(path) for path in traced} - {None}
    traced |= {e.path for e in entries if e.path.endswith(".pyc") and module_key(e.path) in modules}
    return traced & {e.path for e in entries}


def compact_removals(entries: Iterable[Entry], trace: ImportTrace | None) -> set[str]:
    """Paths the compact profile would drop: .py shipped with its .pyc and, given a trace, every file
    never imported (metadata stays). Also read by `budget --what-if` for a projected layer."""
    entries = list(entries)
    compiled = {module_key(e.path) for e in entries if e.path.endswith(".pyc")}
    removable = {e.path for e in entries if e.path.endswith(".py") and module_key(e.path) in compiled}
    imported = traced_paths(trace, entries) if trace and trace.files else None
    if imported is not None:
        removable |= {e.path for e in entries if e.path not in imported and category(e.path) != METADATA}
    return removable
