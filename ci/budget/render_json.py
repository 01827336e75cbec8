"""budget.json: every figure of the budget, for machines (deploy gates, baselines, dashboards)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ci.budget.model import FAIL, WARN, Budget
from ci.budget.options import outcome, paste_text
from ci.budget.render_terminal import verdict_message
from ci.paths import BuildPaths
from ci.reports import Finding, write_report
from ci.snapshot import Snapshot
from ci.units import UNITS_NOTE

CAUSE_FILE = "requirements.in"  # where the layer's contents are chosen


def budget_to_dict(budget: Budget) -> dict[str, Any]:
    """The report body; ci.reports.write_report adds format, check, passed and the artifacts' digests."""
    comparison = budget.comparison
    return {
        "status": budget.status,
        "units": UNITS_NOTE,
        "limit_bytes": budget.limit_bytes,
        "warn_fraction": budget.warn_fraction,
        "warn_bytes": budget.warn_bytes,
        "used_bytes": budget.used_bytes,
        "headroom_bytes": budget.headroom_bytes,
        "over_limit_bytes": max(0, budget.used_bytes - budget.limit_bytes),
        "percent_used": budget.percent_used,
        "lock": budget.lock,
        "components": [dataclasses.asdict(c) for c in budget.components],
        "distributions": [dataclasses.asdict(d) for d in budget.distributions],
        "categories": [dataclasses.asdict(c) for c in budget.categories],
        "rules": [dataclasses.asdict(r) for r in budget.rules],
        "largest_files": [dataclasses.asdict(f) for f in budget.largest_files],
        "largest_directories": [dataclasses.asdict(d) for d in budget.largest_directories],
        "bytecode": dataclasses.asdict(budget.bytecode),
        "import_trace": None
        if budget.imports is None
        else {
            "source": budget.imports.source,
            "traced_by": budget.imports.traced_by,
            "report": budget.imports.report,
            "same_layer": budget.imports.same_layer,
            "never_imported": [use.name for use in budget.imports.never_imported],
            "never_imported_bytes": budget.imports.never_imported_bytes,
            "distributions": [dataclasses.asdict(use) for use in budget.imports.distributions],
            "unimported_directories": [dataclasses.asdict(g) for g in budget.imports.unimported_directories],
        },
        "baseline": None
        if comparison is None
        else {
            "label": comparison.label,
            "source": comparison.source,
            "used_bytes": comparison.before_used_bytes,
            "delta_bytes": comparison.delta_bytes,
            "distributions": [
                {**dataclasses.asdict(row), "delta_bytes": row.delta_bytes} for row in comparison.distributions
            ],
        },
        "compact_saving_bytes": budget.compact_saving_bytes,
        "suggestions": [
            {**dataclasses.asdict(s), "fits": s.fits(budget.limit_bytes), "outcome": outcome(s, budget.limit_bytes)}
            for s in budget.suggestions
        ],
    }


def budget_findings(budget: Budget) -> list[Finding]:
    """A failure (or the warning band) on requirements.in, where the layer's contents are chosen."""
    message = verdict_message(budget)
    if budget.status == FAIL:
        fixes = "; ".join(
            f"{paste_text(s) or s.action} ({outcome(s, budget.limit_bytes)})" for s in budget.suggestions[:3]
        )
        fix = f"remove or replace what is largest in {CAUSE_FILE}" + (f": {fixes}" if fixes else "")
        return [Finding("budget", "error", message or "the size budget failed", fix, CAUSE_FILE)]
    if budget.status == WARN and message:
        return [Finding("budget", "warning", message, "leave room: see the suggestions in budget.md", CAUSE_FILE)]
    return []


def write_budget_json(paths: BuildPaths, budget: Budget, judged: Iterable[Snapshot] = ()) -> Path:
    """`judged`: the snapshots of layer.zip and function.zip the budget was computed from."""
    return write_report(
        paths, "budget", budget.passed, budget_to_dict(budget), findings=budget_findings(budget), judged=judged
    )
