"""model-report.md: what a reviewer reads in the pull-request comment and the job summary.

The chart's series get named contrasting colours and a table of the same numbers, since xychart-beta has
no legend.
"""

from __future__ import annotations

from typing import Any

from ci.model_report.base import FAILED, REUSED, TRAINED, UNAVAILABLE, UNCHANGED, Base
from ci.model_report.compare import DAYS, Comparison, Curve, Row

BASE_COLOUR, HEAD_COLOUR = "#1f77b4", "#d62728"  # blue, red: named named in the text
TABLE_DAYS = (1, 7, 30)
TITLE = "## Model: this change against the base branch"


def signed(value: float | None) -> str:
    if value is None:
        return ""
    return "0" if value == 0 else f"{value:+.4f}"


def shown(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def base_name(base: Base) -> str:
    return f"`{base.ref}` ({base.short})" if base.commit else f"`{base.ref}`" if base.ref else "the base"


def verdict(comparison: Comparison, base: Base) -> str:
    head_fails = [row.label for row in comparison.rows if row.head_passes is False]
    gate = (
        f"❌ this model misses [training]'s gate on {', '.join(head_fails)}"
        if head_fails
        else "✅ this model passes [training]'s gate"
    )
    if base.status == UNCHANGED:
        return f"**Model unchanged from {base_name(base)}**: the training inputs are identical; {gate}."
    if comparison.base is None:
        return f"**No base model to compare with**; {gate}."
    compared = [row for row in comparison.rows if row.verdict]
    better = [row for row in compared if row.verdict == "better"]
    worse = [row for row in compared if row.verdict == "worse"]
    if not better and not worse:
        change = "**Same metrics as the base**"
    else:
        parts = [f"better on {_names(better)}" if better else "", f"worse on {_names(worse)}" if worse else ""]
        text = " and ".join(p for p in parts if p)
        change = f"**{text[0].upper()}{text[1:]}** than the base"
    return f"{change}; {gate}."


def _names(rows: list[Row]) -> str:
    return ", ".join(f"{row.label} ({signed(row.delta)})" for row in rows)


def monotonic_text(record: dict[str, Any] | None) -> str:
    if record is None:
        return "not recorded"
    passed, histories, violations = record.get("passed"), record.get("histories"), record.get("violations")
    word = "✅ passed" if passed is True else "❌ failed" if passed is False else "?"
    return f"{word} ({violations} violation(s) in {histories} histories)"


def metrics_table(comparison: Comparison, with_base: bool) -> list[str]:
    header = (
        "| metric | base | this change | Δ | change | gate ([training]) |"
        if with_base
        else "| metric | this change | gate ([training]) |"
    )
    lines = [header, "|---|---:|---:|---:|---|---|" if with_base else "|---|---:|---|"]
    for row in comparison.rows:
        mark = "" if row.head_passes is None else (" ✅" if row.head_passes else " ❌")
        if with_base:
            lines.append(
                f"| {row.label} | {shown(row.base)} | {shown(row.head)} | {signed(row.delta)} | {row.verdict} "
                f"| {row.gate}{mark} |"
            )
        else:
            lines.append(f"| {row.label} | {shown(row.head)} | {row.gate}{mark} |")
    head_check = monotonic_text(comparison.head.monotonic)
    if with_base:
        base_check = monotonic_text(comparison.base.monotonic if comparison.base else None)
        lines.append(f"| monotonic in elapsed days | {base_check} | {head_check} | | | training's check |")
    else:
        lines.append(f"| monotonic in elapsed days | {head_check} | training's check |")
    return lines


def chart(found: Curve) -> list[str]:
    """One history's xychart: the base's curve blue, this change's red (one series when there is no base)."""
    series = [(values, colour) for values, colour in ((found.base, BASE_COLOUR), (found.head, HEAD_COLOUR)) if values]
    if not series:
        return []
    lowest = min(min(values) for values, _ in series)
    floor = max(0.0, int(lowest * 10) / 10)
    palette = ", ".join(colour for _, colour in series)
    lines = [
        "```mermaid",
        f'%%{{init: {{"themeVariables": {{"xyChart": {{"plotColorPalette": "{palette}"}}}}}}}}%%',
        "xychart-beta",
        f'    title "{found.label}"',
        f'    x-axis "days since the last review" [{", ".join(str(day) for day in DAYS)}]',
        f'    y-axis "p(recall)" {floor:.1f} --> 1',
    ]
    lines += [f"    line [{', '.join(f'{value:.4f}' for value in values)}]" for values, _ in series]
    return [*lines, "```"]


def curve_table(comparison: Comparison, with_base: bool) -> list[str]:
    columns = [DAYS.index(day) for day in TABLE_DAYS]
    lines = [
        "| history | " + " | ".join(f"day {day}" for day in TABLE_DAYS) + " |",
        "|---|" + "---:|" * len(TABLE_DAYS),
    ]
    for found in comparison.curves:
        cells = []
        for column in columns:
            head = f"{found.head[column]:.3f}" if found.head else "–"
            if with_base and found.base:
                cells.append(f"{found.base[column]:.3f} → {head}")
            else:
                cells.append(head)
        lines.append(f"| {found.label} | " + " | ".join(cells) + " |")
    return lines


def where_from(base: Base) -> str:
    how = {
        TRAINED: "trained now from its own code and pipeline.toml with this checkout's .venv",
        REUSED: "trained earlier by this command from its own code with this checkout's .venv (reused)",
        UNCHANGED: "its training inputs (training/, [training], the training lock) equal this checkout's, "
        "so this checkout's model stands for it (not retrained)",
    }.get(base.status, "")
    text = f"Base: {base_name(base)}, {base.chosen_by}"
    text += f"; {how}." if how else "."
    if base.lock_differs:
        text += (
            " Its training lock differs from this checkout's; both were trained with this checkout's .venv, "
            "so the difference shown is code and settings, not library versions."
        )
    return text


def render(comparison: Comparison, base: Base) -> str:
    lines = [TITLE, "", verdict(comparison, base), ""]
    if base.status in (UNAVAILABLE, FAILED):
        lines += [f"> ⚠️ base not built: {base.reason}. Fix: {base.fix}.", ""]
    unchanged = base.status == UNCHANGED  # the common case: details folded, the verdict line says it all
    if unchanged:
        lines += ["<details><summary>Metrics and predicted recall (the base's are the same)</summary>", ""]
    lines += [*metrics_table(comparison, comparison.base is not None and not unchanged), ""]
    draw_base = any(found.base is not None for found in comparison.curves)
    if comparison.curves:
        if draw_base:
            legend = f"base {base_name(base)} in blue, this change in red"
        elif base.status == UNCHANGED:
            legend = "this change (the base's curves are the same)"
        else:
            legend = "this change"
        first, *others = comparison.curves
        lines += [f"**Predicted recall over {DAYS[-1]} days** for committed histories: {legend}.", ""]
        lines += [*chart(first), "", *curve_table(comparison, draw_base), ""]
        if others:
            lines += [f"<details><summary>The other {len(others)} histories' curves</summary>", ""]
            for found in others:
                lines += [*chart(found), ""]
            lines += ["</details>", ""]
    if comparison.curve_note:
        lines += [f"_{comparison.curve_note}_", ""]
    if unchanged:
        lines += ["</details>", ""]
    if base.status not in (UNAVAILABLE, FAILED):
        lines += [f"<sub>{where_from(base)}</sub>", ""]
    return "\n".join(lines)
