"""The per-distribution table's rows, built once for both renderings (terminal and budget.md)."""

from __future__ import annotations

from dataclasses import dataclass

from ci.budget.model import Budget, DistributionDelta
from ci.units import as_bytes, mb_cell


@dataclass(frozen=True)
class DistributionRow:
    name: str
    version: str
    unzipped_bytes: int
    zipped_bytes: int | None
    files: int
    share: str  # of everything Lambda counts, e.g. "41.2%"
    delta: DistributionDelta | None  # against the comparison's baseline, when there is one
    removed: bool = False  # in the baseline only

    def cells(self) -> list[object]:
        """Distribution, version, unzipped bytes, unzipped MB, zipped MB, files."""
        return [
            self.name,
            self.version,
            as_bytes(self.unzipped_bytes),
            mb_cell(self.unzipped_bytes),
            mb_cell(self.zipped_bytes),
            self.files,
        ]


def distribution_rows(budget: Budget) -> list[DistributionRow]:
    """Every layer distribution, largest first, then those removed since the baseline (zero bytes now)."""
    comparison = budget.comparison
    deltas = {row.name: row for row in comparison.distributions} if comparison else {}
    used = budget.used_bytes
    rows = [
        DistributionRow(
            name=group.name,
            version=group.version or "",
            unzipped_bytes=group.unzipped_bytes,
            zipped_bytes=group.zipped_bytes,
            files=group.files,
            share=f"{100 * group.unzipped_bytes / used:.1f}%" if used else "",
            delta=deltas.get(group.name),
        )
        for group in budget.distributions
    ]
    rows += [
        DistributionRow(delta.name, delta.before_version or "", 0, None, 0, "", delta, removed=True)
        for delta in deltas.values()
        if delta.status == "removed"
    ]
    return rows
