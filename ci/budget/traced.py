"""What an import trace covers in a layer's entries: which files it saw, and what the compact profile
(sourceless + prune_unimported) would drop from them. Read by the budget, its options and the what-if."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ci.budget import attribution
from ci.budget.attribution import category
from ci.budget.model import TRACE_SMOKE
from ci.budget.zips import Entry


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
    traced = {
        path if path.startswith(attribution.LAYER_PREFIX) else attribution.LAYER_PREFIX + path.lstrip("/")
        for path in trace.files
    }
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
        removable |= {e.path for e in entries if e.path not in imported and category(e.path) != attribution.METADATA}
    return removable
