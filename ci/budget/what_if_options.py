"""What would bring an over-budget projection back under the limit, each option measured on it.

The compact profile's removals come from the same function the budget uses for the built layer
(ci.budget.compute.compact_removals), applied to the projected files; distributions never imported
come from the same import trace the budget reads. Added distributions are left out of both: the
trace was taken before the handler imported them, so it cannot say what of them goes unused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ci.budget.compute import ImportTrace, compact_removals
from ci.budget.zips import Entry
from ci.units import as_mb

CONTAINER_IMAGE_LIMIT = 10 * 1024**3  # Lambda: container images up to 10 GB, uncompressed, all layers included


@dataclass(frozen=True)
class Option:
    name: str  # compact | never-imported | together | container-image
    action: str
    saves_bytes: int
    leaves_bytes: int  # the projected total with this option applied

    def fits(self, limit: int) -> bool:
        return self.leaves_bytes < limit


def measured_options(
    used_bytes: int,
    limit_bytes: int,
    entries: Mapping[str, list[Entry]],  # distribution (canonical; "" for unattributed) -> projected entries
    judged: set[str],  # distributions the trace can speak for (not added by the request)
    trace: ImportTrace | None,
    compact_already: bool,
    never_imported: Iterable[str],
    imported_where: str,
) -> list[Option]:
    """The options, largest saving first; a container image last when none of them fits."""
    options: list[Option] = []
    compact: set[str] = set()
    if not compact_already:
        judged_entries = [e for name, group in entries.items() if name in judged for e in group]
        compact = compact_removals(judged_entries, trace)
        scope = "files the import trace never saw and .py shipped beside its .pyc" if trace else ".py beside its .pyc"
        options.append(
            _option(
                "compact",
                "turn on the compact profile (build.sourceless = true and build.prune_unimported = true): it drops "
                f"{scope}, in the distributions the trace covers; the full smoke must still pass",
                compact,
                entries,
                used_bytes,
            )
        )
    unused = sorted(set(never_imported) & judged & set(entries))
    dropped: set[str] = set()
    if unused:
        dropped = {e.path for name in unused for e in entries[name]}
        options.append(
            _option(
                "never-imported",
                f"remove distributions never imported {imported_where}: {', '.join(unused)} (only if nothing needs "
                "them at runtime: events not among the committed ones, lazy imports when unpickling)",
                dropped,
                entries,
                used_bytes,
            )
        )
    if compact and dropped:
        both = _option(
            "together", f"the compact profile and removing {', '.join(unused)}, together", compact | dropped, entries,
            used_bytes,
        )  # fmt: skip
        if both.saves_bytes > max(option.saves_bytes for option in options):
            options.append(both)
    options.sort(key=lambda option: -option.saves_bytes)
    best = min((option.leaves_bytes for option in options), default=used_bytes)
    if best >= limit_bytes:
        options.append(
            Option(
                "container-image",
                f"nothing above brings it under {limit_bytes:,} bytes: ship the function as a container image "
                f"instead (Lambda allows 10 GB, {CONTAINER_IMAGE_LIMIT:,} bytes, uncompressed; this set is "
                f"{as_mb(used_bytes)}, {100 * used_bytes / CONTAINER_IMAGE_LIMIT:.1f}% of it)",
                0,
                used_bytes,
            )
        )
    return options


def _option(name: str, action: str, removed: set[str], entries: Mapping[str, list[Entry]], used: int) -> Option:
    saves = sum(e.unzipped_bytes for group in entries.values() for e in group if e.path in removed)
    return Option(name, action, saves, used - saves)
