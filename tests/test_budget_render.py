"""The three renderings of one budget: budget.md parsed back, the terminal table, budget.json."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest
from budget_fixtures import (
    LAYER_FILES,
    TRACED,
    config_with,
    make_build,
    write_build_trace,
    write_smoke_trace,
    write_zip,
    zip_sums,
)

from ci.budget.compute import compare, compute_budget, gather_inputs
from ci.budget.render import (
    Budget,
    budget_to_dict,
    render_markdown,
    render_terminal,
    verdict_message,
    write_budget_json,
)
from ci.config import load_config
from ci.paths import REPO_ROOT, BuildPaths
from ci.reports import sha256_file
from ci.snapshot import take

HEADLINE = re.compile(
    r"^## (?P<icon>✅|⚠️|❌) Lambda size budget: (?P<status>pass|warn|fail) — (?P<used>[\d,]+) of (?P<limit>[\d,]+) "
    r"bytes \((?P<percent>[\d.]+)%\) · (?P<room>headroom [\d.,]+ MB|over by [\d.,]+ MB|no headroom)"
    r"(?: · (?P<delta>[+-][\d.,]+ MB|[+-][\d,]+ bytes|±0 bytes) vs (?P<label>\S+))?$",
    re.MULTILINE,
)
PIE_SLICE = re.compile(r'^    "(?P<label>[^"]+)" : (?P<value>\d+(?:\.\d+)?)$')


def tables_after(markdown: str, heading: str) -> list[list[str]]:
    """The first table under `heading`, as rows of cells (header row first, separator dropped)."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == heading)
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        if line.startswith("|"):
            cells = [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if not all(re.fullmatch(r"-+:?", cell) for cell in cells):
                rows.append(cells)
        elif rows:
            break
    assert rows, f"no table under {heading!r}"
    return rows


def mermaid_blocks(markdown: str) -> list[list[str]]:
    return [block.splitlines() for block in re.findall(r"^```mermaid\n(.*?)^```$", markdown, re.DOTALL | re.MULTILINE)]


def number(cell: str) -> int:
    return int(cell.replace(",", ""))


def budget_for(paths: BuildPaths, **settings: object) -> Budget:
    return compute_budget(gather_inputs(config_with(**settings), paths))


@pytest.fixture()
def paths(tmp_path: Path) -> BuildPaths:
    return make_build(tmp_path)


def test_headline_and_summary_state_used_limit_percent_and_headroom(paths: BuildPaths) -> None:
    budget = budget_for(paths, limit_bytes=1_000_000)
    markdown = render_markdown(budget)
    match = HEADLINE.search(markdown)
    assert match, markdown.splitlines()[:3]
    assert (match["icon"], match["status"]) == ("✅", "pass")
    assert number(match["used"]) == budget.used_bytes == zip_sums(paths.layer_zip, paths.function_zip)[0]
    assert number(match["limit"]) == 1_000_000
    assert float(match["percent"]) == pytest.approx(100 * budget.used_bytes / 1_000_000, abs=0.05)
    assert match["delta"] is None  # no baseline, no delta claimed
    summary = {row[0]: row[1:] for row in tables_after(markdown, match.group(0))[1:]}
    assert number(summary["Used (function + layers, unzipped)"][0]) == budget.used_bytes
    assert number(summary["Headroom"][0]) == 1_000_000 - budget.used_bytes
    assert "MB = 1,000,000 bytes (decimal)" in markdown


def test_distribution_and_category_tables_hold_the_figures(paths: BuildPaths) -> None:
    budget = budget_for(paths)
    markdown = render_markdown(budget)
    header, *rows = tables_after(markdown, "### Per distribution (layer, largest first)")
    assert header[:6] == ["Distribution", "Version", "Unzipped bytes", "Unzipped MB", "Zipped MB", "Files"]
    assert [(r[0], number(r[2]), number(r[4 + 1])) for r in rows] == [
        (g.name, g.unzipped_bytes, g.files) for g in budget.distributions
    ]
    assert [number(r[2]) for r in rows] == sorted((number(r[2]) for r in rows), reverse=True)
    assert float(rows[0][4]) == pytest.approx(budget.distributions[0].zipped_bytes / 1e6, abs=0.05)
    _, *categories = tables_after(markdown, "### Per category")
    assert {r[0] for r in categories} == {
        "extension modules",
        "vendored shared libraries",
        "Python source",
        "bytecode",
        "data",
        "metadata",
    }
    assert sum(number(r[1]) for r in categories) == budget.used_bytes
    _, *rules = tables_after(markdown, "### What pruning removed")
    assert [(r[0], number(r[1]), number(r[2])) for r in rules] == [("tests", 120, 40_000_000), ("docs", 3, 5_000)]
    _, *largest = tables_after(markdown, "<details><summary>15 largest files</summary>")
    assert len(largest) == min(15, len(LAYER_FILES) + 2)
    assert largest[0][0] == "`layer.zip:python/numpy.libs/libopenblas64_p-r0.so`"


@pytest.mark.parametrize("limit", [1_000_000, 200_000])
def test_the_mermaid_pie_is_well_formed_and_adds_up(tmp_path: Path, limit: int) -> None:
    paths = make_build(tmp_path, function={"handler/app.py": 30_000})
    budget = budget_for(paths, limit_bytes=limit)
    (block,) = mermaid_blocks(render_markdown(budget))
    assert block[0] == "pie showData"
    assert re.fullmatch(r"    title [^\n\"]+", block[1])
    slices = [PIE_SLICE.fullmatch(line) for line in block[2:]]
    assert all(slices), block
    values = {m["label"]: float(m["value"]) for m in slices if m}
    assert all(value > 0 for value in values.values())
    assert len(values) == len(slices)  # labels are unique
    assert "function code" in values
    assert values["function code"] == pytest.approx(0.03)
    if budget.headroom_bytes > 0:
        assert values["headroom"] == pytest.approx(budget.headroom_bytes / 1e6, abs=0.005)
        assert sum(values.values()) == pytest.approx(limit / 1e6, abs=0.005 * len(values))
    else:
        assert "headroom" not in values
        assert "over the" in block[1]
        assert sum(values.values()) == pytest.approx(budget.used_bytes / 1e6, abs=0.005 * len(values))


def test_a_failure_reads_in_lambdas_terms(paths: BuildPaths) -> None:
    used = zip_sums(paths.layer_zip, paths.function_zip)[0]
    budget = budget_for(paths, limit_bytes=used - 10)
    message = verdict_message(budget)
    assert message is not None
    assert message.splitlines()[0] == f"unzipped size {used} bytes exceeds the {used - 10}-byte limit by 10 bytes"
    assert "largest contributors:" in message
    assert "numpy (layer distribution)" in message
    markdown = render_markdown(budget)
    assert HEADLINE.search(markdown)["status"] == "fail"  # type: ignore[index]
    assert "### What could be removed" in markdown
    assert "compact profile" in markdown


def test_a_warning_names_the_band(paths: BuildPaths) -> None:
    used = zip_sums(paths.layer_zip, paths.function_zip)[0]
    budget = budget_for(paths, limit_bytes=used + 100, warn_fraction=0.9)
    assert HEADLINE.search(render_markdown(budget))["icon"] == "⚠️"  # type: ignore[index]
    assert "warning from 90%" in (verdict_message(budget) or "")


def test_deltas_show_in_the_headline_and_flag_added_and_removed(tmp_path: Path) -> None:
    before = make_build(tmp_path / "before")
    baseline = budget_to_dict(budget_for(before)) | {"format": 1, "check": "budget"}
    files = {n: v for n, v in LAYER_FILES.items() if "six" not in n}
    files["python/pytz/__init__.py"] = 2_000
    files["python/pytz-2026.6.dist-info/METADATA"] = 100
    files["python/numpy/big.so"] = 260_000
    budget = budget_for(make_build(tmp_path / "after", layer=files))
    budget = dataclasses.replace(budget, comparison=compare(budget, baseline, "main", "before"))
    markdown = render_markdown(budget)
    match = HEADLINE.search(markdown)
    assert match and (match["delta"], match["label"]) == ("+0.3 MB", "main")
    header, *rows = tables_after(markdown, "### Per distribution (layer, largest first)")
    assert header[-1] == "vs main"
    flags = {row[0]: row[-1] for row in rows}
    assert flags["pytz"] == "**added**"
    assert flags["six"].startswith("**removed**")
    assert flags["numpy"] == "+0.3 MB"
    _, *changes = tables_after(markdown, "### Changes vs main")
    by_name = {row[0]: row for row in changes}
    assert by_name["six"][1].startswith("**removed**") and number(by_name["six"][4].lstrip("+")) == -1_600
    assert by_name["pytz"][1].startswith("**added**") and by_name["pytz"][4] == "+2,100"
    assert "scipy" not in by_name  # unchanged distributions are not listed as changes
    assert "vs main" in render_terminal(budget).splitlines()[0]


def test_never_imported_distributions_are_listed_when_traced(paths: BuildPaths) -> None:
    trace = {"files": ["python/numpy/__init__.py", "python/six.py"], "distributions": {}}
    report = {"format": 1, "artifacts": {"layer.zip": sha256_file(paths.layer_zip)}, "import_trace": trace}
    paths.report("smoke").write_text(json.dumps(report))
    markdown = render_markdown(budget_for(paths))
    _, *rows = tables_after(markdown, "### Shipped but never imported")
    never = [row[0] for row in rows if row[-1] == "**yes**"]
    assert never == ["scipy", "(unattributed)"]


def test_terminal_table_and_budget_json_carry_the_same_figures(paths: BuildPaths) -> None:
    budget = budget_for(paths)
    text = render_terminal(budget)
    assert text.splitlines()[0].startswith("Lambda size budget: PASS")
    assert f"{budget.used_bytes:,}" in text
    numpy_line = next(line for line in text.splitlines() if line.startswith("numpy "))
    assert f"{budget.distributions[0].unzipped_bytes:,}" in numpy_line
    assert "1 MB = 1,000,000 bytes" in text

    judged = [take(paths, paths.layer_zip, "layer.zip")]  # what the budget read: only its digest is recorded
    report = json.loads(write_budget_json(paths, budget, judged).read_text())
    assert (report["format"], report["check"], report["passed"], report["status"]) == (1, "budget", True, "pass")
    assert report["artifacts"] == {"layer.zip": sha256_file(paths.layer_zip)} and report["findings"] == []
    assert report["used_bytes"] == budget.used_bytes
    assert report["limit_bytes"] == 262_144_000
    assert report["headroom_bytes"] == 262_144_000 - budget.used_bytes
    assert [d["name"] for d in report["distributions"]] == [g.name for g in budget.distributions]
    assert report["bytecode"] == {"mode": "runtime", "files": 2, "bytes": 3_700, "source_with_bytecode_bytes": 4_800}
    assert report["baseline"] is None and report["import_trace"] is None


def test_extra_layers_appear_in_the_parts_table_and_the_chart(tmp_path: Path) -> None:
    paths = make_build(tmp_path)
    extra = write_zip(tmp_path / "otel.zip", {"extensions/collector": 40_000})
    arn = "arn:aws:lambda:us-east-1:123456789012:layer:insights:14"
    config = load_config(  # the extra zip beside this copy of the configuration: inside its repository
        file=Path(shutil.copy(REPO_ROOT / "pipeline.toml", tmp_path)),
        overrides={
            "budget": {
                "limit_bytes": 10_000_000,
                "extra_layer_zips": [str(extra)],
                "extra_layer_arns": [{"arn": arn, "unzipped_bytes": 2_000_000}],
            }
        },
    )
    budget = compute_budget(gather_inputs(config, paths))
    markdown = render_markdown(budget)
    _, *parts = tables_after(markdown, "### What Lambda counts")
    by_name = {row[0]: row for row in parts}
    assert set(by_name) == {"function.zip", "layer.zip", "otel.zip", "insights:14"}
    assert by_name["insights:14"][1:3] == ["extra layer", "2,000,000"]
    assert by_name["insights:14"][4:] == ["", ""]  # declared, not measured: no zipped size, no file count
    assert sum(number(row[2]) for row in parts) == budget.used_bytes
    (block,) = mermaid_blocks(markdown)
    values = {m["label"]: float(m["value"]) for m in map(PIE_SLICE.fullmatch, block[2:]) if m}
    assert values["insights:14"] == 2.0 and values["otel.zip"] == 0.04


def section(markdown: str, heading: str) -> str:
    """The text under `heading` up to the next heading of any level."""
    after = markdown.split(f"\n{heading}\n", 1)[1]
    return re.split(r"^#+ ", after, maxsplit=1, flags=re.MULTILINE)[0]


BUILD_TRACE = "the build's trace of the handler on the committed events"


def test_a_pull_request_without_smoke_report_reads_the_builds_trace_and_says_so(paths: BuildPaths) -> None:
    write_build_trace(paths, TRACED)
    budget = budget_for(paths)
    markdown = render_markdown(budget)
    text = section(markdown, "### Shipped but never imported")
    assert "No import trace yet" not in text
    assert f"Import trace: {BUILD_TRACE} (`{paths.report('build')}`)." in text
    assert f"were never imported in {BUILD_TRACE}:" in text
    assert "smoke invocation" not in text and "another layer.zip" not in text
    _, *rows = tables_after(markdown, "### Shipped but never imported")
    assert [row[0] for row in rows if row[-1] == "**yes**"] == ["scipy", "(unattributed)"]
    advice = markdown.split("<summary>What could be removed</summary>", 1)[1]
    assert f"- distributions shipped but never imported in {BUILD_TRACE}: scipy" in advice

    line = render_terminal(budget).splitlines()[-1]
    assert line.startswith(f"Shipped but never imported in {BUILD_TRACE}: scipy ")
    report = budget_to_dict(budget)["import_trace"]
    assert (report["source"], report["traced_by"]) == ("build", BUILD_TRACE)
    assert report["report"] == str(paths.report("build"))
    assert report["never_imported"] == ["scipy", "(unattributed)"]


def test_the_smoke_trace_is_named_as_the_smoke_invocation_when_it_wins(paths: BuildPaths) -> None:
    write_build_trace(paths, TRACED)
    write_smoke_trace(paths, TRACED)
    budget = budget_for(paths)
    text = section(render_markdown(budget), "### Shipped but never imported")
    assert f"Import trace: the smoke invocation (`{paths.report('smoke')}`)." in text
    assert "were never imported by the smoke invocation:" in text and BUILD_TRACE not in text
    assert "by the smoke invocation" in render_terminal(budget).splitlines()[-1]
    assert budget_to_dict(budget)["import_trace"]["source"] == "smoke"

    write_smoke_trace(paths, TRACED, layer_sha256="0" * 64)
    write_build_trace(paths, TRACED, layer_sha256="1" * 64)  # neither trace is of this layer: the stale one shows
    stale = budget_for(paths)
    assert "was taken on another layer.zip: rerun the smoke invocation" in render_markdown(stale)
    assert "(trace taken on a different layer.zip: rerun the smoke invocation)" in render_terminal(stale)


def test_without_any_trace_the_report_says_how_to_get_one(paths: BuildPaths) -> None:
    text = section(render_markdown(budget_for(paths)), "### Shipped but never imported")
    assert "No import trace yet" in text and "`python -m ci build`" in text and "`python -m ci smoke`" in text
