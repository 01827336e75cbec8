"""The plain table printed on the terminal, and the verdict's message in Lambda's own terms."""

from __future__ import annotations

from collections.abc import Sequence

from ci.budget.distribution_rows import distribution_rows
from ci.budget.model import FAIL, WARN, Budget
from ci.budget.options import describe
from ci.tables import text_table
from ci.units import UNITS_NOTE, as_bytes, as_mb, mb_cell, signed_mb

CONTRIBUTORS = 5


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """The first column names the row (left-aligned), the others are figures (right-aligned)."""
    return text_table(headers, rows, numeric_from=1)


def headline(budget: Budget) -> str:
    used, limit = budget.used_bytes, budget.limit_bytes
    room = (
        f"headroom {as_bytes(budget.headroom_bytes)} bytes ({as_mb(budget.headroom_bytes)})"
        if budget.headroom_bytes > 0
        else f"over by {as_bytes(-budget.headroom_bytes)} bytes ({as_mb(-budget.headroom_bytes)})"
        if budget.headroom_bytes < 0
        else "no headroom"
    )
    text = (
        f"Lambda size budget: {budget.status.upper()}  {as_bytes(used)} of {as_bytes(limit)} bytes "
        f"({as_mb(used)} of {as_mb(limit)}, {budget.percent_used:.1f}%), {room}"
    )
    if budget.comparison:
        text += f", {signed_mb(budget.comparison.delta_bytes)} vs {budget.comparison.label}"
    return text


def render_terminal(budget: Budget) -> str:
    parts = [headline(budget), f"({UNITS_NOTE}; unzipped unless marked zipped)", ""]
    parts.append(
        table(
            ["What Lambda counts", "unzipped bytes", "MB", "zipped MB", "files"],
            [
                (c.name, as_bytes(c.unzipped_bytes), mb_cell(c.unzipped_bytes), mb_cell(c.zipped_bytes), c.files)
                for c in budget.components
            ]
            + [("total", as_bytes(budget.used_bytes), mb_cell(budget.used_bytes), "", "")],
        )
    )
    headers = ["Layer distribution", "version", "unzipped bytes", "MB", "zipped MB", "files", "share"]
    if budget.comparison:
        headers.append(f"vs {budget.comparison.label}")
    rows = []
    for dist in distribution_rows(budget):
        if dist.removed:
            continue  # named on a line of its own below
        row = [*dist.cells(), dist.share]
        if budget.comparison:
            row.append(_delta_cell(dist.delta.status, dist.delta.delta_bytes) if dist.delta else "")
        rows.append(row)
    parts += ["", table(headers, rows)]
    if budget.comparison:
        for gone in budget.comparison.distributions:
            if gone.status == "removed":
                parts.append(f"removed since {budget.comparison.label}: {gone.name} ({signed_mb(gone.delta_bytes)})")
    parts += [
        "",
        table(
            ["Category", "unzipped bytes", "MB", "zipped MB", "files"],
            [
                (g.name, as_bytes(g.unzipped_bytes), mb_cell(g.unzipped_bytes), mb_cell(g.zipped_bytes), g.files)
                for g in budget.categories
            ],
        ),
    ]
    if budget.rules:
        parts += [
            "",
            table(
                ["Pruning rule", "files removed", "bytes removed", "MB"],
                [(r.name, r.files, as_bytes(r.bytes), mb_cell(r.bytes)) for r in budget.rules],
            ),
        ]
    parts += [
        "",
        table(
            [f"Largest {len(budget.largest_files)} files", "distribution", "unzipped bytes", "MB"],
            [
                (f"{f.component}:{f.path}", f.distribution, as_bytes(f.unzipped_bytes), mb_cell(f.unzipped_bytes))
                for f in budget.largest_files
            ],
        ),
        "",
        bytecode_line(budget),
    ]
    if budget.imports:
        parts.append(never_imported_line(budget))
    return "\n".join(parts)


def _delta_cell(status: str, delta: int) -> str:
    if status == "added":
        return f"added {signed_mb(delta)}"
    return signed_mb(delta) if delta or status == "changed" else "±0"


def bytecode_line(budget: Budget) -> str:
    code = budget.bytecode
    mode = f"mode {code.mode}" if code.mode else "mode unknown (no build.json)"
    share = f"{100 * code.bytes / budget.used_bytes:.1f}%" if budget.used_bytes else "0%"
    return (
        f"Bytecode ({mode}): {code.files} .pyc files, {as_bytes(code.bytes)} bytes ({as_mb(code.bytes)}, {share} "
        f"of the total); .py source shipped next to its .pyc: {as_mb(code.source_with_bytecode_bytes)}"
    )


def never_imported_line(budget: Budget) -> str:
    imports = budget.imports
    assert imports is not None
    stale = "" if imports.same_layer else " (trace taken on a different layer.zip: rerun the smoke invocation)"
    if not imports.never_imported:
        return f"Every layer distribution was imported {imports.imported_where}{stale}."
    names = ", ".join(f"{use.name} {as_mb(use.shipped_bytes)}" for use in imports.never_imported)
    return (
        f"Shipped but never imported {imports.imported_where}{stale}: {names} "
        f"({as_mb(imports.never_imported_bytes)} in all)"
    )


def verdict_message(budget: Budget) -> str | None:
    """Lambda's terms for a failure, then who is large and what could go; a warning in the band."""
    used, limit = budget.used_bytes, budget.limit_bytes
    if budget.status == WARN:
        return (
            f"unzipped size {used} bytes is {budget.percent_used:.1f}% of the {limit}-byte limit "
            f"(warning from {budget.warn_fraction:.0%}, {budget.warn_bytes} bytes): "
            f"{budget.headroom_bytes} bytes of headroom left"
        )
    if budget.status != FAIL:
        return None
    if used > limit:
        first = f"unzipped size {used} bytes exceeds the {limit}-byte limit by {used - limit} bytes"
    else:
        first = f"unzipped size {used} bytes reaches the {limit}-byte limit (Lambda requires it to be smaller)"
    contributors = sorted(
        [(f"{c.name} ({c.kind})", c.unzipped_bytes) for c in budget.components if c.kind != "layer"]
        + [(f"{g.name} (layer distribution)", g.unzipped_bytes) for g in budget.distributions],
        key=lambda item: -item[1],
    )[:CONTRIBUTORS]
    lines = [first, "largest contributors:"]
    lines += [f"  {name}: {size} bytes ({as_mb(size)})" for name, size in contributors]
    return "\n".join(lines)


def removal_advice(budget: Budget) -> str:
    lines = ["what could be removed:"]
    for idea in budget.suggestions:
        lines.append(f"  - {describe(idea, budget.limit_bytes)}")
    return "\n".join(lines)
