"""The budget's figures: one structure, computed once, rendered three ways (renderers never compute)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ci.units import as_bytes, as_mb

PASS, WARN, FAIL = "pass", "warn", "fail"

# Where an import trace came from, and how a reader is told so.
TRACE_SMOKE, TRACE_BUILD = "smoke", "build"
TRACE_SOURCES = {
    TRACE_SMOKE: "the smoke invocation",
    TRACE_BUILD: "the build's trace of the handler on the committed events",
}


@dataclass(frozen=True)
class Component:
    """One thing Lambda unpacks for the function: the function zip or one layer."""

    name: str
    kind: str  # function | layer | extra layer
    source: str  # file path, or the layer ARN for a layer declared by size
    unzipped_bytes: int
    zipped_bytes: int | None  # None when declared in the configuration rather than measured
    files: int | None


@dataclass(frozen=True)
class Group:
    """Bytes of a set of files: a distribution, a category or a directory."""

    name: str
    unzipped_bytes: int
    zipped_bytes: int
    files: int
    version: str | None = None


@dataclass(frozen=True)
class FileSize:
    component: str
    path: str
    unzipped_bytes: int
    zipped_bytes: int
    distribution: str
    category: str


@dataclass(frozen=True)
class RuleRemoval:
    name: str
    files: int
    bytes: int
    paths: list[str]


@dataclass(frozen=True)
class Bytecode:
    """What precompiled .pyc costs, and the source that sits next to it."""

    mode: str | None  # the build's bytecode mode (runtime | all | none), None if unknown
    files: int
    bytes: int
    source_with_bytecode_bytes: int  # .py files whose .pyc ships too: what sourceless would drop


@dataclass(frozen=True)
class DistributionUse:
    name: str
    shipped_bytes: int
    imported_bytes: int
    imported_files: int


@dataclass(frozen=True)
class ImportUsage:
    """Shipped versus imported, from an import trace: the smoke invocation's, or the build's own."""

    report: str  # the smoke.json or build.json it came from
    same_layer: bool  # the trace was taken on exactly this layer.zip
    distributions: list[DistributionUse]
    unimported_directories: list[Group]  # package sub-folders of which nothing was imported, largest first
    source: str = TRACE_SMOKE  # TRACE_SMOKE | TRACE_BUILD

    @property
    def traced_by(self) -> str:
        return TRACE_SOURCES[self.source]

    @property
    def imported_where(self) -> str:
        """The phrase after "imported": 'by the smoke invocation' or 'in the build's trace of ...'."""
        return ("by " if self.source == TRACE_SMOKE else "in ") + self.traced_by

    @property
    def never_imported(self) -> list[DistributionUse]:
        return [use for use in self.distributions if use.imported_files == 0]

    @property
    def never_imported_bytes(self) -> int:
        return sum(use.shipped_bytes for use in self.never_imported)


@dataclass(frozen=True)
class DistributionDelta:
    name: str
    status: str  # added | removed | changed | unchanged
    before_bytes: int
    after_bytes: int
    before_version: str | None
    after_version: str | None

    @property
    def delta_bytes(self) -> int:
        return self.after_bytes - self.before_bytes


@dataclass(frozen=True)
class Comparison:
    label: str  # e.g. main
    source: str  # the baseline budget.json or git ref it came from
    before_used_bytes: int
    after_used_bytes: int
    distributions: list[DistributionDelta]

    @property
    def delta_bytes(self) -> int:
        return self.after_used_bytes - self.before_used_bytes

    @property
    def changes(self) -> list[DistributionDelta]:
        return [row for row in self.distributions if row.status != "unchanged"]


@dataclass(frozen=True)
class Suggestion:
    """One way to make room: what it removes, the lines of pipeline.toml that do it, and what would remain."""

    name: str  # compact | never-imported | together | folder | bytecode | extra-layer | container-image | learn
    action: str  # what it removes, and what must still hold
    paste: tuple[str, ...]  # lines to paste under [section] of pipeline.toml; () when no setting does it
    section: str  # build | budget | "" (none)
    saves_bytes: int | None  # None when the saving cannot be known before trying
    leaves_bytes: int | None  # function + layers with it applied; None when unknown

    def fits(self, limit: int) -> bool:
        return self.leaves_bytes is not None and self.leaves_bytes < limit

    def outcome(self, limit: int) -> str:
        """'leaves 258.4 MB: fits, 98.6%' or 'leaves 270.1 MB: still over by 8.0 MB' (or why it is unknown)."""
        leaves = self.leaves_bytes
        if leaves is None:
            return "what would remain is known only once it is built"
        if self.fits(limit):
            return f"leaves {as_mb(leaves)}: fits, {100 * leaves / limit:.1f}% of the limit"
        over = leaves - limit
        return f"leaves {as_mb(leaves)}: still over by {as_mb(over) if over >= 50_000 else f'{as_bytes(over)} bytes'}"

    def paste_text(self, code: Callable[[str], str] = lambda line: line) -> str:
        """'paste under [build]: sourceless = true and prune_unimported = true' (each line through `code`)."""
        if not self.paste:
            return ""
        return f"paste under [{self.section}]: " + " and ".join(code(line) for line in self.paste)

    def describe(self, limit: int, code: Callable[[str], str] = lambda line: line) -> str:
        """The whole advice on one line: action; the line to paste; what it saves and what would remain."""
        parts = [self.action, self.paste_text(code)] if self.paste else [self.action]
        saving = f"saves {as_mb(self.saves_bytes)}, " if self.saves_bytes else ""
        return "; ".join(parts) + f" — {saving}{self.outcome(limit)}"

    def to_dict(self, limit: int) -> dict[str, Any]:
        return {**asdict(self), "fits": self.fits(limit), "outcome": self.outcome(limit)}


@dataclass(frozen=True)
class Budget:
    limit_bytes: int
    warn_fraction: float
    components: list[Component]
    distributions: list[Group]  # the built layer's, largest first
    categories: list[Group]
    rules: list[RuleRemoval]
    largest_files: list[FileSize]
    largest_directories: list[Group]
    bytecode: Bytecode
    imports: ImportUsage | None
    lock: dict[str, str]  # {"path", "sha256"} of the lock the layer was built from
    compact_saving_bytes: int | None = None  # what the compact profile would remove, if known
    suggestions: list[Suggestion] = field(default_factory=list)
    comparison: Comparison | None = None

    @property
    def used_bytes(self) -> int:
        return sum(component.unzipped_bytes for component in self.components)

    @property
    def warn_bytes(self) -> int:
        return math.ceil(self.limit_bytes * self.warn_fraction)

    @property
    def headroom_bytes(self) -> int:
        """Negative when over: then it is minus the excess."""
        return self.limit_bytes - self.used_bytes

    @property
    def percent_used(self) -> float:
        return round(100.0 * self.used_bytes / self.limit_bytes, 2)

    @property
    def status(self) -> str:
        # Lambda: "Unzipped size must be smaller than 262144000 bytes", so reaching the limit fails.
        if self.used_bytes >= self.limit_bytes:
            return FAIL
        if self.used_bytes >= self.warn_bytes:
            return WARN
        return PASS

    @property
    def passed(self) -> bool:
        return self.status != FAIL
