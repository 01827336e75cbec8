"""A what-if projection as the terminal shows it and as budget-what-if.json records it (with findings).

Rendered once and cached as text + data, so a cached answer prints exactly what the first one did.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ci.budget.model import FAIL, WARN
from ci.budget.options import describe, outcome, paste_text
from ci.budget.render_terminal import headline, table, verdict_message
from ci.budget.what_if_project import Projection
from ci.budget.wheel_reasons import target_name
from ci.pins.guard import PACKAGES
from ci.reports import Finding
from ci.tables import text_table
from ci.units import UNITS_NOTE, as_bytes, as_mb, mb_cell, signed_mb

CHECK = "budget-what-if"
HOW = {
    "layer.zip": "as build/layer.zip ships it",
    "measured": "installed and pruned by the build's rules now",
    "cached": "installed and pruned by the build's rules (cached)",
}
MODEL_PACKAGES = frozenset(PACKAGES.values())


@dataclass
class Answer:
    """What the command prints and writes; cached as is."""

    passed: bool
    text: str
    report: dict[str, Any]
    findings: list[dict[str, Any]]
    timings: dict[str, float] = field(default_factory=dict)
    from_cache: bool = False


def answer_of(projection: Projection, timings: dict[str, float]) -> Answer:
    findings = _findings(projection)
    return Answer(
        passed=projection.budget.passed,
        text=render_text(projection, findings),
        report=report_data(projection, timings),
        findings=[finding.to_dict() for finding in findings],
        timings=timings,
    )


def render_text(projection: Projection, findings: list[Finding]) -> str:
    budget = projection.budget
    comparison = budget.comparison
    assert comparison is not None
    parts = [
        f"What if: requirements.in + {projection.request.describe()}, for {target_name(projection.target)}",
        f"resolved into {projection.lock_shown} (the committed lock is unchanged)",
        headline(budget).replace("Lambda size budget:", "Projected size budget:", 1),
        f"({UNITS_NOTE}; unzipped)",
        "",
    ]
    rows = []
    for row in comparison.changes:
        rows.append(
            (
                f"{_mark(row.status)} {row.name}",
                HOW.get(projection.how.get(row.name, ""), "removed from the lock"),
                row.before_version or "-",
                row.after_version or "-",
                as_bytes(row.after_bytes),
                signed_mb(row.delta_bytes),
            )
        )
    same = [row for row in comparison.distributions if row.status == "unchanged"]
    headers = ["Distribution", "measured", "before", "after", "unzipped bytes", "delta"]
    parts.append(text_table(headers, rows, numeric_from=2) if rows else "no distribution changes")
    unchanged_bytes = sum(row.after_bytes for row in same)
    parts.append(f"{len(same)} distributions unchanged ({as_mb(unchanged_bytes)}, as build/layer.zip ships them)")
    parts += [
        "",
        table(
            ["What Lambda counts", "unzipped bytes", "MB"],
            [(c.name, as_bytes(c.unzipped_bytes), mb_cell(c.unzipped_bytes)) for c in budget.components]
            + [("total", as_bytes(budget.used_bytes), mb_cell(budget.used_bytes))],
        ),
    ]
    notes = [f for f in findings if f.severity != "error"]
    if notes:
        parts += ["", *(f"{f.severity}: {f.message}" + (f"\n  fix: {f.fix}" if f.fix else "") for f in notes)]
    if budget.status == FAIL:
        parts += ["", "What would make it fit, measured on this projection (largest saving first):"]
        for number, option in enumerate(projection.options, start=1):
            parts.append(f"  {number}. {describe(option, budget.limit_bytes)}")
    return "\n".join(parts)


def _mark(status: str) -> str:
    return {"added": "+", "removed": "-", "changed": "~"}.get(status, " ")


def _findings(projection: Projection) -> list[Finding]:
    budget = projection.budget
    found = []
    if budget.status in (FAIL, WARN):
        message = verdict_message(budget) or ""
        first = message.splitlines()[0] if message else budget.status
        fitting = [o for o in projection.options if o.fits(budget.limit_bytes) and o.saves_bytes]
        chosen = fitting[0] if fitting else (projection.options[-1] if projection.options else None)
        fix = (
            ""
            if chosen is None
            else (f"{paste_text(chosen)} ({outcome(chosen, budget.limit_bytes)})" if chosen.paste else chosen.action)
        )
        if budget.status == FAIL:
            found.append(Finding(CHECK, "error", f"with {projection.request.describe()}: {first}", fix))
        else:
            found.append(Finding(CHECK, "warning", f"with {projection.request.describe()}: {first}"))
    for move in projection.moves:
        model = move.name in MODEL_PACKAGES
        found.append(
            Finding(
                CHECK,
                "warning",
                f"{move.name} {move.before} -> {move.after}: the resolver moves this existing pin to fit "
                f"{projection.request.describe()} (required by {', '.join(move.required_by) or 'the request'})"
                + ("; the model is pickled with it, so the model's pins change" if model else ""),
                "retrain after `python -m ci lock` (python -m training) and rerun `python -m ci pins`" if model else "",
            )
        )
    for note in projection.held_back:
        found.append(Finding(CHECK, "notice", note))
    for name, measured in sorted(projection.measured.items()):
        if measured.import_errors:
            first, error = sorted(measured.import_errors.items())[0]
            more = f" (+{len(measured.import_errors) - 1} more)" if len(measured.import_errors) > 1 else ""
            found.append(
                Finding(
                    CHECK,
                    "warning",
                    f"{name} {measured.version}: {first} fails to import on {projection.target.runtime.name} beside "
                    f"the current layer, even unpruned: {error[:200]}{more}",
                )
            )
    for name, size in sorted(projection.bytecode_if_imported.items()):
        if size:
            found.append(
                Finding(
                    CHECK,
                    "notice",
                    f"{name} is not imported by the handler yet; once it is, build.bytecode = runtime adds the .pyc "
                    f"of what it imports: up to {as_bytes(size)} bytes ({as_mb(size)}) if every module is",
                )
            )
    return found


def report_data(projection: Projection, timings: dict[str, float]) -> dict[str, Any]:
    budget = projection.budget
    comparison = budget.comparison
    assert comparison is not None
    target = projection.target
    return {
        "what_if": {
            "specs": list(projection.request.specs),
            "files": [str(path) for path in projection.request.files],
            "lock": projection.lock_shown,
            "lock_sha256": budget.lock.get("sha256"),
        },
        "target": {"runtime": target.runtime.name, "architecture": target.architecture, "glibc": target.glibc},
        "status": budget.status,
        "used_bytes": budget.used_bytes,
        "limit_bytes": budget.limit_bytes,
        "warn_fraction": budget.warn_fraction,
        "headroom_bytes": budget.headroom_bytes,
        "percent_used": budget.percent_used,
        "current": {"source": comparison.source, "used_bytes": comparison.before_used_bytes},
        "delta_bytes": comparison.delta_bytes,
        "components": [asdict(component) for component in budget.components],
        "distributions": [
            {**asdict(row), "delta_bytes": row.delta_bytes, "measured": projection.how.get(row.name)}
            for row in comparison.distributions
        ],
        "moved_pins": [asdict(move) for move in projection.moves],
        "held_back": projection.held_back,
        "bytecode_if_imported": projection.bytecode_if_imported,
        "import_errors": {name: m.import_errors for name, m in projection.measured.items() if m.import_errors},
        "options": [
            {**asdict(option), "fits": option.fits(budget.limit_bytes), "outcome": outcome(option, budget.limit_bytes)}
            for option in projection.options
        ],
        "timings": timings,
    }
