"""The budget rendered three ways: the terminal table, budget.md (GitHub-flavoured Markdown with one
mermaid `pie`) and budget.json; renderers format, they never compute."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci.budget.model import FAIL, PASS, WARN, Budget, DistributionDelta
from ci.budget.options import describe, outcome, paste_text
from ci.paths import BuildPaths
from ci.reports import Finding, write_report
from ci.snapshot import Snapshot
from ci.tables import text_table
from ci.units import MB, UNITS_NOTE, as_bytes, as_mb, mb_cell, signed_bytes, signed_mb


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


ICONS = {PASS: "✅", WARN: "⚠️", FAIL: "❌"}
PIE_SLICES = 6  # distributions named in the chart; the rest is one slice, so the chart stays legible


def _cell(value: object) -> str:
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def md_table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], numeric_from: int = 1, text_after: int | None = None
) -> str:
    """Text columns left, numbers right: columns numeric_from .. text_after-1 are numeric."""
    last = len(headers) if text_after is None else text_after
    align = ["---:" if numeric_from <= i < last else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def md_headline(budget: Budget) -> str:
    room = budget.headroom_bytes
    text = (
        f"## {ICONS[budget.status]} Lambda size budget: {budget.status} — {as_bytes(budget.used_bytes)} of "
        f"{as_bytes(budget.limit_bytes)} bytes ({budget.percent_used:.1f}%) · "
        + (f"headroom {as_mb(room)}" if room > 0 else f"over by {as_mb(-room)}" if room < 0 else "no headroom")
    )
    if budget.comparison:
        text += f" · {signed_mb(budget.comparison.delta_bytes)} vs {budget.comparison.label}"
    return text


def pie(budget: Budget) -> str:
    """Composition of what Lambda counts, plus the headroom left, in MB."""
    slices: list[tuple[str, int]] = [(g.name, g.unzipped_bytes) for g in budget.distributions[:PIE_SLICES]]
    rest = sum(g.unzipped_bytes for g in budget.distributions[PIE_SLICES:])
    if rest:
        slices.append(("other layer files", rest))
    slices += [
        ("function code" if c.kind == "function" else c.name, c.unzipped_bytes)
        for c in budget.components
        if c.kind != "layer"
    ]
    if budget.headroom_bytes > 0:
        slices.append(("headroom", budget.headroom_bytes))
    limit = as_mb(budget.limit_bytes)
    title = (
        f"Unzipped MB against the {limit} limit"
        if budget.headroom_bytes > 0
        else f"Unzipped MB: {as_mb(-budget.headroom_bytes)} over the {limit} limit"
    )
    lines = ["```mermaid", "pie showData", f"    title {title}"]
    for label, size in slices:
        value = round(size / MB, 2)
        if value > 0:  # mermaid draws positive slices only; under 5 kB is invisible anyway
            lines.append(f'    "{label.replace(chr(34), "")}" : {value:g}')
    lines.append("```")
    return "\n".join(lines)


def render_markdown(budget: Budget) -> str:
    comparison = budget.comparison
    out = [md_headline(budget), ""]
    summary_rows: list[Sequence[object]] = [
        ("Used (function + layers, unzipped)", as_bytes(budget.used_bytes), mb_cell(budget.used_bytes)),
        ("Limit", as_bytes(budget.limit_bytes), mb_cell(budget.limit_bytes)),
        ("Headroom", as_bytes(budget.headroom_bytes), mb_cell(budget.headroom_bytes)),
        (f"Warning from {budget.warn_fraction:.0%}", as_bytes(budget.warn_bytes), mb_cell(budget.warn_bytes)),
    ]
    if comparison:
        summary_rows.append(
            (f"Change vs {comparison.label}", signed_bytes(comparison.delta_bytes), signed_mb(comparison.delta_bytes))
        )
    out += [md_table(["", "Bytes", "MB"], summary_rows), ""]
    message = verdict_message(budget)
    if message:
        out += ["```text", message, "```", ""]
    out += [
        "<sub>MB = 1,000,000 bytes (decimal). Sizes are unzipped unless marked zipped: Lambda counts the unzipped "
        "size of the function code plus every layer against one limit.</sub>",
        "",
        pie(budget),
        "",
        "### What Lambda counts",
        "",
        md_table(
            ["Part", "Kind", "Unzipped bytes", "Unzipped MB", "Zipped MB", "Files"],
            [
                (
                    c.name,
                    c.kind,
                    as_bytes(c.unzipped_bytes),
                    mb_cell(c.unzipped_bytes),
                    mb_cell(c.zipped_bytes),
                    c.files,
                )
                for c in budget.components
            ],
            numeric_from=2,
        ),
        "",
        "### Per distribution (layer, largest first)",
        "",
        _distribution_table(budget),
        "",
    ]
    if comparison:
        out += [f"### Changes vs {comparison.label}", "", f"Baseline: {comparison.source}.", ""]
        if comparison.changes:
            out.append(
                md_table(
                    ["Distribution", "Change", "Before (bytes)", "After (bytes)", "Delta (bytes)", "Delta"],
                    [
                        (
                            row.name,
                            _change(row.status, row.before_version, row.after_version),
                            as_bytes(row.before_bytes),
                            as_bytes(row.after_bytes),
                            signed_bytes(row.delta_bytes),
                            signed_mb(row.delta_bytes),
                        )
                        for row in comparison.changes
                    ],
                    numeric_from=2,
                )
            )
        else:
            out.append("No distribution changed in size or version.")
        out.append("")
    out += [
        "### Per category",
        "",
        md_table(
            ["Category", "Unzipped bytes", "Unzipped MB", "Zipped MB", "Files", "Share"],
            [
                (
                    g.name,
                    as_bytes(g.unzipped_bytes),
                    mb_cell(g.unzipped_bytes),
                    mb_cell(g.zipped_bytes),
                    g.files,
                    f"{100 * g.unzipped_bytes / budget.used_bytes:.1f}%" if budget.used_bytes else "",
                )
                for g in budget.categories
            ],
        ),
        "",
        "### Bytecode",
        "",
        bytecode_line(budget) + ".",
        "",
    ]
    out += _imports_section(budget)
    out += ["### What pruning removed", ""]
    if budget.rules:
        out.append(
            md_table(
                ["Rule", "Files", "Bytes", "MB", "For example"],
                [
                    (r.name, r.files, as_bytes(r.bytes), mb_cell(r.bytes), ", ".join(f"`{p}`" for p in r.paths[:2]))
                    for r in budget.rules
                ],
                text_after=4,
            )
        )
    else:
        out.append("No pruning figures (build/reports/build.json has no rules).")
    out += [
        "",
        f"<details><summary>{len(budget.largest_files)} largest files</summary>",
        "",
        md_table(
            ["File", "Distribution", "Category", "Unzipped bytes", "Unzipped MB", "Zipped MB"],
            [
                (
                    f"`{f.component}:{f.path}`",
                    f.distribution,
                    f.category,
                    as_bytes(f.unzipped_bytes),
                    mb_cell(f.unzipped_bytes),
                    mb_cell(f.zipped_bytes),
                )
                for f in budget.largest_files
            ],
            numeric_from=3,
        ),
        "",
        "</details>",
        "",
    ]
    out += _advice_section(budget)
    return "\n".join(out).rstrip() + "\n"


def _distribution_table(budget: Budget) -> str:
    comparison = budget.comparison
    headers = ["Distribution", "Version", "Unzipped bytes", "Unzipped MB", "Zipped MB", "Files"]
    if comparison:
        headers.append(f"vs {comparison.label}")
    rows: list[Sequence[object]] = []
    for dist in distribution_rows(budget):
        row = dist.cells()
        if comparison:
            row.append(_md_delta(dist))
        rows.append(row)
    return md_table(headers, rows, numeric_from=2)


def _md_delta(dist: DistributionRow) -> str:
    delta = dist.delta
    if delta is None:
        return ""
    if dist.removed:
        return f"**removed** {signed_mb(delta.delta_bytes)}"
    return "**added**" if delta.status == "added" else signed_mb(delta.delta_bytes)


def _change(status: str, before: str | None, after: str | None) -> str:
    if status in ("added", "removed"):
        return f"**{status}**" + (f" ({after or before})" if after or before else "")
    if before != after:
        return f"{before} → {after}"
    return "size"


def _imports_section(budget: Budget) -> list[str]:
    imports = budget.imports
    out = ["### Shipped but never imported", ""]
    if imports is None:
        return [
            *out,
            "No import trace yet: the layer build records one when it has a trained model to run the handler "
            "with (`python -m training`, then `python -m ci build`), and so does the smoke invocation "
            "(`python -m ci smoke`).",
            "",
        ]
    out += [f"Import trace: {imports.traced_by} (`{imports.report}`).", ""]
    if not imports.same_layer:
        out += [f"> The trace in `{imports.report}` was taken on another layer.zip: rerun the smoke invocation.", ""]
    if imports.never_imported:
        out.append(
            f"{len(imports.never_imported)} distribution(s), {as_bytes(imports.never_imported_bytes)} bytes "
            f"({as_mb(imports.never_imported_bytes)}), were never imported {imports.imported_where}:"
        )
    else:
        out.append(f"Every distribution in the layer was imported {imports.imported_where}.")
    out += [
        "",
        md_table(
            ["Distribution", "Shipped bytes", "Imported bytes", "Imported files", "Never imported"],
            [
                (
                    use.name,
                    as_bytes(use.shipped_bytes),
                    as_bytes(use.imported_bytes),
                    use.imported_files,
                    "**yes**" if use.imported_files == 0 else "",
                )
                for use in imports.distributions
            ],
            text_after=4,
        ),
        "",
    ]
    if imports.unimported_directories:
        out += [
            "Largest package folders nothing was imported from:",
            "",
            md_table(
                ["Folder", "Unzipped bytes", "Unzipped MB", "Files"],
                [
                    (f"`python/{g.name}`", as_bytes(g.unzipped_bytes), mb_cell(g.unzipped_bytes), g.files)
                    for g in imports.unimported_directories
                ],
            ),
            "",
        ]
    return out


def _advice_section(budget: Budget) -> list[str]:
    if not budget.suggestions:
        return []
    lines = [f"- {describe(idea, budget.limit_bytes, code=lambda line: f'`{line}`')}" for idea in budget.suggestions]
    if budget.status == PASS:
        return ["<details><summary>What could be removed</summary>", "", *lines, "", "</details>", ""]
    return ["### What could be removed", "", *lines, ""]


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
