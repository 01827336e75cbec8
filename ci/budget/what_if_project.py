"""The projected layer: layer.zip's own entries for unchanged distributions, measured files for the others.

Bytecode follows the build's mode; an added distribution gets none in `runtime` mode (the handler does not
import it yet), and what it would add is reported beside it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

from ci.budget.model import Budget, Comparison, Component, DistributionDelta, Group, Suggestion
from ci.budget.projection import Measured
from ci.budget.traced import module_key
from ci.budget.what_if_current import Current
from ci.budget.what_if_resolve import Move
from ci.budget.what_if_specs import WhatIfRequest
from ci.budget.zips import Entry
from ci.config import Config, Target
from ci.layer.bytecode import pyc_path
from ci.lock.lockfile import LockFile

LAYER_PREFIX = "python/"
CURRENT = "the current lock"


@dataclass(frozen=True)
class Projection:
    request: WhatIfRequest
    target: Target
    budget: Budget  # the projected function + layers, compared with the current lock's
    lock_shown: str  # the what-if lock, as a path to read
    entries: dict[str, list[Entry]]  # canonical distribution ("" for unattributed) -> projected layer entries
    how: dict[str, str]  # canonical distribution -> "layer.zip" | "measured" | "cached"
    measured: dict[str, Measured]
    added: list[str]
    moves: list[Move]
    held_back: list[str]
    needed_by_added: set[str]  # distributions an added one requires (never "never imported" from now on)
    bytecode_if_imported: dict[str, int]  # added distribution -> .pyc bytes if the handler imports all of it
    options: list[Suggestion] = field(default_factory=list)

    @property
    def judged(self) -> set[str]:
        """Distributions the current import trace can speak for: all but the added ones."""
        return set(self.entries) - set(self.added)

    def with_options(self, options: Sequence[Suggestion]) -> Projection:
        return dataclasses.replace(self, options=list(options))


def project(
    config: Config,
    current: Current,
    request: WhatIfRequest,
    lock: LockFile,
    measured: dict[str, Measured],
    moves: list[Move],
    held_back: list[str],
    lock_shown: str,
) -> Projection:
    mode = current.budget.bytecode.mode
    version = config.target.runtime.python
    entries: dict[str, list[Entry]] = {"": list(current.entries.get("", []))}
    how: dict[str, str] = {}
    added = sorted(name for name in lock.pins if name not in current.lock.pins)
    for name in lock.pins:
        if name in measured:
            modules = _compiled_modules(mode, current.entries.get(name, []), name in added)
            entries[name] = measured_entries(measured[name], modules, version)
            how[name] = "cached" if measured[name].from_cache else "measured"
        else:
            entries[name] = list(current.entries.get(name, []))
            how[name] = "layer.zip"
    deltas = _deltas(current, lock, entries)
    layer = [entry for group in entries.values() for entry in group]
    components = [
        *(c for c in current.budget.components if c.kind == "function"),
        Component("layer.zip (projected)", "layer", lock_shown, sum(e.unzipped_bytes for e in layer), None, len(layer)),
        *(c for c in current.budget.components if c.kind == "extra layer"),
    ]
    groups = [
        Group(name, sum(e.unzipped_bytes for e in group), 0, len(group), lock.pins[name].version)
        for name, group in entries.items()
        if name
    ]
    budget = dataclasses.replace(
        current.budget,
        components=components,
        distributions=sorted(groups, key=lambda g: (-g.unzipped_bytes, g.name)),
        categories=[],
        rules=[],
        largest_files=[],
        largest_directories=[],
        imports=None,
        lock={"path": lock_shown, "sha256": lock.digest},
        compact_saving_bytes=None,
        suggestions=[],
    )
    budget = dataclasses.replace(
        budget,
        comparison=Comparison(
            label=CURRENT,
            source=f"{config.relative(current.lock.path)} ({current.lock.digest[:12]}) as build/layer.zip ships it",
            before_used_bytes=current.budget.used_bytes,
            after_used_bytes=budget.used_bytes,
            distributions=deltas,
        ),
    )
    return Projection(
        request=request,
        target=config.target,
        budget=budget,
        lock_shown=lock_shown,
        entries=entries,
        how=how,
        measured=measured,
        added=added,
        moves=moves,
        held_back=held_back,
        needed_by_added={name for name, pin in lock.pins.items() if set(pin.via) & set(added)},
        bytecode_if_imported={name: measured[name].bytecode_for(None) for name in added if name in measured},
    )


def measured_entries(measured: Measured, modules: set[str] | None, python_version: str) -> list[Entry]:
    """The measured files, plus the .pyc of `modules` (None: every module) where the build puts them."""
    files = [Entry(LAYER_PREFIX + rel, size, 0) for rel, size in measured.files.items()]
    compiled = [
        Entry(LAYER_PREFIX + pyc_path(rel, python_version, False), size, 0)
        for rel, size in measured.pyc.items()
        if modules is None or rel in modules
    ]
    return files + compiled


def _compiled_modules(mode: str | None, old: list[Entry], added: bool) -> set[str] | None:
    if mode == "all":
        return None
    if mode == "none" or added:
        return set()
    return old_bytecode_sources(old)  # runtime (or unknown): what the build compiled for the old version


def old_bytecode_sources(entries: list[Entry]) -> set[str]:
    """The .py (relative to python/) whose .pyc the current layer ships: the modules the build compiled."""
    sources = set()
    for entry in entries:
        if entry.path.endswith(".pyc"):
            key = module_key(entry.path)
            if key is not None:
                sources.add(key.removeprefix(LAYER_PREFIX) + ".py")
    return sources


def _deltas(current: Current, lock: LockFile, entries: dict[str, list[Entry]]) -> list[DistributionDelta]:
    rows = []
    for name in sorted(set(current.lock.pins) | set(lock.pins)):
        before, after = current.lock.pins.get(name), lock.pins.get(name)
        before_bytes = sum(e.unzipped_bytes for e in current.entries.get(name, [])) if before else 0
        after_bytes = sum(e.unzipped_bytes for e in entries.get(name, [])) if after else 0
        if before is None:
            status = "added"
        elif after is None:
            status = "removed"
        elif before.version != after.version or before_bytes != after_bytes:
            status = "changed"
        else:
            status = "unchanged"
        rows.append(
            DistributionDelta(
                name=name,
                status=status,
                before_bytes=before_bytes,
                after_bytes=after_bytes,
                before_version=before.version if before else None,
                after_version=after.version if after else None,
            )
        )
    rows.sort(key=lambda row: (-abs(row.delta_bytes), row.name))
    return rows
