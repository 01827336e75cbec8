"""budget.md: the size report for a GitHub job summary and the pull-request comment.

Plain GitHub-flavoured Markdown plus one mermaid `pie`, which GitHub renders in comments,
summaries and files alike.
"""

from __future__ import annotations

from collections.abc import Sequence

from ci.budget.distribution_rows import DistributionRow, distribution_rows
from ci.budget.model import FAIL, PASS, WARN, Budget
from ci.budget.options import describe
from ci.budget.render_terminal import bytecode_line, verdict_message
from ci.units import MB, as_bytes, as_mb, mb_cell, signed_bytes, signed_mb

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


def headline(budget: Budget) -> str:
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
    out = [headline(budget), ""]
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
