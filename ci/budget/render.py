"""The budget's figures, computed once (ci/budget/compute.py), and their three renderings: budget.md (GitHub
Markdown with one mermaid `pie`), the same tables on the terminal, and budget.json; renderers never compute."""

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ci.paths import BuildPaths
from ci.reports import Finding, write_report
from ci.snapshot import Snapshot
from ci.tables import text_table
from ci.units import MB, UNITS_NOTE, as_bytes, as_mb, mb_cell, signed_bytes, signed_mb

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
        lines = " and ".join(code(line) for line in self.paste)
        return f"paste under [{self.section}]: {lines}" if self.paste else ""

    def describe(self, limit: int, code: Callable[[str], str] = lambda line: line) -> str:
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


CONTRIBUTORS = 5
ICONS = {PASS: "✅", WARN: "⚠️", FAIL: "❌"}
PIE_SLICES = 6  # distributions named in the chart; the rest is one slice, so the chart stays legible
CAUSE_FILE = "requirements.in"  # where the layer's contents are chosen


def _sizes(unzipped: int, zipped: int | None) -> tuple[str, str, str]:
    return as_bytes(unzipped), mb_cell(unzipped), mb_cell(zipped)


class Table(NamedTuple):
    """One table of budget.md; the terminal prints the same rows without the Markdown markup."""

    headers: Sequence[str]
    rows: Sequence[Sequence[object]]
    numeric_from: int = 1
    text_after: int | None = None  # columns numeric_from .. text_after-1 are numeric

    def markdown(self) -> str:
        last = len(self.headers) if self.text_after is None else self.text_after
        align = ["---:" if self.numeric_from <= i < last else "---" for i in range(len(self.headers))]
        lines = ["| " + " | ".join(self.headers) + " |", "| " + " | ".join(align) + " |"]
        lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in self.rows]
        return "\n".join(lines)

    def text(self) -> str:
        rows = [[_cell(c).replace("**", "").replace("`", "").replace("\\|", "|") for c in row] for row in self.rows]
        return text_table(self.headers, rows, numeric_from=self.numeric_from)


def _cell(value: object) -> str:
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def _room(budget: Budget, bytes_too: bool) -> str:
    room = budget.headroom_bytes
    if room == 0:
        return "no headroom"
    figure = f"{as_bytes(abs(room))} bytes ({as_mb(abs(room))})" if bytes_too else as_mb(abs(room))
    return f"headroom {figure}" if room > 0 else f"over by {figure}"


def headline(budget: Budget) -> str:
    used, limit = budget.used_bytes, budget.limit_bytes
    text = (
        f"Lambda size budget: {budget.status.upper()}  {as_bytes(used)} of {as_bytes(limit)} bytes "
        f"({as_mb(used)} of {as_mb(limit)}, {budget.percent_used:.1f}%), {_room(budget, True)}"
    )
    if budget.comparison:
        text += f", {signed_mb(budget.comparison.delta_bytes)} vs {budget.comparison.label}"
    return text


HEADING_TEXT = "== "


def render_terminal(budget: Budget) -> str:
    parts = [headline(budget), f"({UNITS_NOTE}; unzipped unless marked zipped)"]
    for item in _document(budget):
        if isinstance(item, Table):
            parts += [item.text()] if parts[-1].startswith(HEADING_TEXT) else ["", item.text()]
        elif item.startswith("### "):
            parts += ["", HEADING_TEXT + item.removeprefix("### ")]
    parts += ["", bytecode_line(budget)]
    if imports := budget.imports:
        where = imports.imported_where
        where += "" if imports.same_layer else " (trace taken on a different layer.zip: rerun the smoke invocation)"
        names = ", ".join(f"{use.name} {as_mb(use.shipped_bytes)}" for use in imports.never_imported)
        never = f"Shipped but never imported {where}: {names} ({as_mb(imports.never_imported_bytes)} in all)"
        parts.append(never if imports.never_imported else f"Every layer distribution was imported {where}.")
    return "\n".join(parts)


def bytecode_line(budget: Budget) -> str:
    code = budget.bytecode
    mode = f"mode {code.mode}" if code.mode else "mode unknown (no build.json)"
    share = f"{100 * code.bytes / budget.used_bytes:.1f}%" if budget.used_bytes else "0%"
    return (
        f"Bytecode ({mode}): {code.files} .pyc files, {as_bytes(code.bytes)} bytes ({as_mb(code.bytes)}, {share} "
        f"of the total); .py source shipped next to its .pyc: {as_mb(code.source_with_bytecode_bytes)}"
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
    return "\n".join(["what could be removed:", *(f"  - {i.describe(budget.limit_bytes)}" for i in budget.suggestions)])


def pie(budget: Budget) -> str:
    slices: list[tuple[str, int]] = [(g.name, g.unzipped_bytes) for g in budget.distributions[:PIE_SLICES]]
    rest = sum(g.unzipped_bytes for g in budget.distributions[PIE_SLICES:])
    if rest:
        slices.append(("other layer files", rest))
    slices += [
        ("function code" if c.kind == "function" else c.name, c.unzipped_bytes)
        for c in budget.components
        if c.kind != "layer"
    ]
    limit = as_mb(budget.limit_bytes)
    if budget.headroom_bytes > 0:
        slices.append(("headroom", budget.headroom_bytes))
        title = f"Unzipped MB against the {limit} limit"
    else:
        title = f"Unzipped MB: {as_mb(-budget.headroom_bytes)} over the {limit} limit"
    lines = ["```mermaid", "pie showData", f"    title {title}"]
    for label, size in slices:
        value = round(size / MB, 2)
        if value > 0:  # mermaid draws positive slices only; under 5 kB is invisible anyway
            lines.append(f'    "{label.replace(chr(34), "")}" : {value:g}')
    return "\n".join([*lines, "```"])


def render_markdown(budget: Budget) -> str:
    blocks = (item.markdown() if isinstance(item, Table) else item for item in _document(budget))
    return "\n\n".join(blocks).rstrip() + "\n"


def _document(budget: Budget) -> list[str | Table]:
    """budget.md's blocks (headings, paragraphs, tables), separated by a blank line when rendered."""
    comparison = budget.comparison
    headline = (
        f"## {ICONS[budget.status]} Lambda size budget: {budget.status} — {as_bytes(budget.used_bytes)} of "
        f"{as_bytes(budget.limit_bytes)} bytes ({budget.percent_used:.1f}%) · {_room(budget, False)}"
    )
    summary_rows: list[Sequence[object]] = [
        ("Used (function + layers, unzipped)", as_bytes(budget.used_bytes), mb_cell(budget.used_bytes)),
        ("Limit", as_bytes(budget.limit_bytes), mb_cell(budget.limit_bytes)),
        ("Headroom", as_bytes(budget.headroom_bytes), mb_cell(budget.headroom_bytes)),
        (f"Warning from {budget.warn_fraction:.0%}", as_bytes(budget.warn_bytes), mb_cell(budget.warn_bytes)),
    ]
    headers = ["Distribution", "Version", "Unzipped bytes", "Unzipped MB", "Zipped MB", "Files"]
    deltas = {row.name: row for row in comparison.distributions} if comparison else {}
    distributions: list[list[object]] = []
    for group in budget.distributions:
        row = [group.name, group.version or "", *_sizes(group.unzipped_bytes, group.zipped_bytes), group.files]
        if comparison:  # compare() gives every distribution of the budget a row
            delta = deltas[group.name]
            row.append("**added**" if delta.status == "added" else signed_mb(delta.delta_bytes))
        distributions.append(row)
    if comparison:
        headline += f" · {signed_mb(comparison.delta_bytes)} vs {comparison.label}"
        change = comparison.delta_bytes
        summary_rows.append((f"Change vs {comparison.label}", signed_bytes(change), signed_mb(change)))
        headers.append(f"vs {comparison.label}")
        distributions += [
            [d.name, d.before_version or "", *_sizes(0, None), 0, f"**removed** {signed_mb(d.delta_bytes)}"]
            for d in comparison.distributions
            if d.status == "removed"
        ]
    out: list[str | Table] = [headline, Table(["", "Bytes", "MB"], summary_rows)]
    message = verdict_message(budget)
    if message:
        out.append(f"```text\n{message}\n```")
    components = [(c.name, c.kind, *_sizes(c.unzipped_bytes, c.zipped_bytes), c.files) for c in budget.components]
    out += [
        (
            "<sub>MB = 1,000,000 bytes (decimal). Sizes are unzipped unless marked zipped: Lambda counts the unzipped "
            "size of the function code plus every layer against one limit.</sub>"
        ),
        pie(budget),
        "### What Lambda counts",
        Table(["Part", "Kind", "Unzipped bytes", "Unzipped MB", "Zipped MB", "Files"], components, numeric_from=2),
        "### Per distribution (layer, largest first)",
        Table(headers, distributions, numeric_from=2),
    ]
    if comparison:
        out += [f"### Changes vs {comparison.label}", f"Baseline: {comparison.source}."]
        changes = [
            (
                row.name,
                _change(row.status, row.before_version, row.after_version),
                as_bytes(row.before_bytes),
                as_bytes(row.after_bytes),
                signed_bytes(row.delta_bytes),
                signed_mb(row.delta_bytes),
            )
            for row in comparison.changes
        ]
        headers = ["Distribution", "Change", "Before (bytes)", "After (bytes)", "Delta (bytes)", "Delta"]
        out.append(
            Table(headers, changes, numeric_from=2) if changes else "No distribution changed in size or version."
        )
    used = budget.used_bytes
    shares = [f"{100 * g.unzipped_bytes / used:.1f}%" if used else "" for g in budget.categories]
    categories = [
        (g.name, *_sizes(g.unzipped_bytes, g.zipped_bytes), g.files, share)
        for g, share in zip(budget.categories, shares, strict=True)
    ]
    out += [
        "### Per category",
        Table(["Category", "Unzipped bytes", "Unzipped MB", "Zipped MB", "Files", "Share"], categories),
        "### Bytecode",
        bytecode_line(budget) + ".",
        *_imports_section(budget),
        "### What pruning removed",
    ]
    rules = [
        (r.name, r.files, as_bytes(r.bytes), mb_cell(r.bytes), ", ".join(f"`{p}`" for p in r.paths[:2]))
        for r in budget.rules
    ]
    out.append(
        Table(["Rule", "Files", "Bytes", "MB", "For example"], rules, text_after=4)
        if rules
        else "No pruning figures (build/reports/build.json has no rules)."
    )
    files = [
        (f"`{f.component}:{f.path}`", f.distribution, f.category, *_sizes(f.unzipped_bytes, f.zipped_bytes))
        for f in budget.largest_files
    ]
    headers = ["File", "Distribution", "Category", "Unzipped bytes", "Unzipped MB", "Zipped MB"]
    out += [
        f"<details><summary>{len(files)} largest files</summary>",
        Table(headers, files, numeric_from=3),
        "</details>",
    ]
    if budget.suggestions:
        lines = "\n".join(
            f"- {idea.describe(budget.limit_bytes, code=lambda line: f'`{line}`')}" for idea in budget.suggestions
        )
        if budget.status == PASS:
            out += ["<details><summary>What could be removed</summary>", lines, "</details>"]
        else:
            out += ["### What could be removed", lines]
    return out


def _change(status: str, before: str | None, after: str | None) -> str:
    if status in ("added", "removed"):
        return f"**{status}**" + (f" ({after or before})" if after or before else "")
    return f"{before} → {after}" if before != after else "size"


def _imports_section(budget: Budget) -> list[str | Table]:
    imports = budget.imports
    out: list[str | Table] = ["### Shipped but never imported"]
    if imports is None:
        no_trace = (
            "No import trace yet: the layer build records one when it has a trained model to run the handler "
            "with (`python -m training`, then `python -m ci build`), and so does the smoke invocation "
            "(`python -m ci smoke`)."
        )
        return [*out, no_trace]
    out.append(f"Import trace: {imports.traced_by} (`{imports.report}`).")
    if not imports.same_layer:
        out.append(f"> The trace in `{imports.report}` was taken on another layer.zip: rerun the smoke invocation.")
    if imports.never_imported:
        out.append(
            f"{len(imports.never_imported)} distribution(s), {as_bytes(imports.never_imported_bytes)} bytes "
            f"({as_mb(imports.never_imported_bytes)}), were never imported {imports.imported_where}:"
        )
    else:
        out.append(f"Every distribution in the layer was imported {imports.imported_where}.")
    uses = [
        (
            use.name,
            as_bytes(use.shipped_bytes),
            as_bytes(use.imported_bytes),
            use.imported_files,
            "**yes**" if use.imported_files == 0 else "",
        )
        for use in imports.distributions
    ]
    headers = ["Distribution", "Shipped bytes", "Imported bytes", "Imported files", "Never imported"]
    out.append(Table(headers, uses, text_after=4))
    if imports.unimported_directories:
        folders = [
            (f"`python/{g.name}`", as_bytes(g.unzipped_bytes), mb_cell(g.unzipped_bytes), g.files)
            for g in imports.unimported_directories
        ]
        table = Table(["Folder", "Unzipped bytes", "Unzipped MB", "Files"], folders)
        out += ["Largest package folders nothing was imported from:", table]
    return out


def figures(budget: Budget) -> dict[str, Any]:
    """The verdict and its numbers, as budget.json and budget-what-if.json both report them."""
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
    }


def budget_to_dict(budget: Budget) -> dict[str, Any]:
    """The report body; ci.reports.write_report adds format, check, passed and the artifacts' digests."""
    data = {**asdict(budget), **figures(budget), "import_trace": None, "baseline": None}
    del data["imports"], data["comparison"]
    data["suggestions"] = [suggestion.to_dict(budget.limit_bytes) for suggestion in budget.suggestions]
    if imports := budget.imports:
        never = {"never_imported": [use.name for use in imports.never_imported]}
        extra = {**never, "never_imported_bytes": imports.never_imported_bytes, "traced_by": imports.traced_by}
        data["import_trace"] = {**asdict(imports), **extra}
    if comparison := budget.comparison:
        data["baseline"] = {
            "label": comparison.label,
            "source": comparison.source,
            "used_bytes": comparison.before_used_bytes,
            "delta_bytes": comparison.delta_bytes,
            "distributions": [{**asdict(row), "delta_bytes": row.delta_bytes} for row in comparison.distributions],
        }
    return data


def write_budget_json(paths: BuildPaths, budget: Budget, judged: Iterable[Snapshot] = ()) -> Path:
    """A failure (or the warning band) is a finding on requirements.in, where the layer's contents are chosen."""
    message = verdict_message(budget)
    findings = []
    if budget.status == FAIL:
        fixes = "; ".join(
            f"{s.paste_text() or s.action} ({s.outcome(budget.limit_bytes)})" for s in budget.suggestions[:3]
        )
        fix = f"remove or replace what is largest in {CAUSE_FILE}" + (f": {fixes}" if fixes else "")
        findings = [Finding("budget", "error", message or "the size budget failed", fix, CAUSE_FILE)]
    elif budget.status == WARN and message:
        findings = [Finding("budget", "warning", message, "leave room: see the suggestions in budget.md", CAUSE_FILE)]
    return write_report(paths, "budget", budget.passed, budget_to_dict(budget), findings=findings, judged=judged)
