"""`python -m ci.github annotate|summary` over the report contract: reports written by the checks'
own writers, annotated on the file and line to fix with the fix, summarised for every check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ci.budget.render import Budget, Bytecode, Component, Group, Suggestion, write_budget_json
from ci.cmd_smoke import smoke_findings
from ci.github.api import MAX_PER_REPORT, annotations_for_reports
from ci.paths import REPO_ROOT, BuildPaths
from ci.reports import Finding, write_report
from tests.pins_fixtures import local_bundles  # noqa: F401 - fixture
from tests.test_reports import run_failing_lock, run_failing_pins

CHECKS = ("lock", "build", "abi", "budget", "pins", "smoke", "deploy", "bench")


def ci_github(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {"PATH": "/usr/bin:/bin", **(env or {})}  # no GITHUB_STEP_SUMMARY unless given
    return subprocess.run(
        [sys.executable, "-m", "ci.github", *args], cwd=REPO_ROOT, capture_output=True, text=True, env=clean
    )


def paths_in(tmp_path: Path) -> BuildPaths:
    return BuildPaths(build=tmp_path / "build", cache=tmp_path / "cache")


def budget_over_limit(limit: int) -> Budget:
    return Budget(
        limit_bytes=limit,
        warn_fraction=0.9,
        components=[Component("layer", "layer", "build/layer.zip", 300, 120, 3)],
        distributions=[Group("scipy", 200, 80, 2, "1.16.3"), Group("numpy", 100, 40, 1, "1.26.4")],
        categories=[],
        rules=[],
        largest_files=[],
        largest_directories=[],
        bytecode=Bytecode(None, 0, 0, 0),
        imports=None,
        lock={},
        suggestions=[
            Suggestion("folder", "drop scipy's tests/", ('remove = ["scipy/tests/*"]',), "build", 40, 300 - 40)
        ],
    )


def test_a_failed_pins_report_annotates_the_training_lock_line_with_the_fix(
    local_bundles: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    paths, line = run_failing_pins(tmp_path, local_bundles)
    result = ci_github("annotate", str(paths.reports), "--check", "pins")
    assert result.returncode == 0, result.stderr
    [error] = [row for row in result.stdout.splitlines() if row.startswith("::error")]
    assert error.startswith(f"::error file=training/requirements.txt,line={line},title=pins check failed::locks: ")
    assert "joblib 1.5.0" in error and "%0Afix: constrain the training lock to the layer lock" in error


def test_lock_problems_annotate_the_lock_file_and_line_with_the_fix(tmp_path: Path) -> None:
    paths, line = run_failing_lock(tmp_path)
    found = annotations_for_reports(paths.reports, ["lock"])
    unhashed = [a for a in found if "no --hash" in a.message]
    assert unhashed and all(a.level == "error" for a in found)
    assert (unhashed[0].file, unhashed[0].line) == ("requirements-layer.txt", line)
    assert "\nfix: " in unhashed[0].message


def test_budget_and_smoke_findings_annotate_where_they_are_fixed(tmp_path: Path) -> None:
    paths = paths_in(tmp_path)
    write_budget_json(paths, budget_over_limit(limit=250))
    events = REPO_ROOT / "tests" / "events"
    event = min(events.glob("*.json")).stem
    failures = [f"event {event}: expected status 200, got 500\nTraceback", "init error Runtime.ImportModuleError: x"]
    findings = smoke_findings(failures, ["slow init"], events, "handler.app.handler", REPO_ROOT)
    write_report(paths, "smoke", False, {"failures": failures}, findings=findings)

    found = {(a.title, a.file): a for a in annotations_for_reports(paths.reports)}
    budget = found[("budget check failed", "requirements.in")]
    assert budget.message.startswith("unzipped size 300 bytes exceeds the 250-byte limit by 50 bytes")
    fix = 'fix: remove or replace what is largest in requirements.in: paste under [build]: remove = ["scipy/tests/*"]'
    assert f"{fix} (leaves 0.0 MB: still over by 10 bytes)" in budget.message
    smoke = found[("smoke check failed", f"tests/events/{event}.json")]
    assert smoke.render().endswith(
        f"::event {event}: expected status 200, got 500%0ATraceback%0Afix: " + smoke.message.split("fix: ")[1]
    )
    assert found[("smoke check failed", "handler/app.py")].message.startswith("init error")
    assert found[("smoke check warning", "handler/app.py")].level == "warning"


def test_a_budget_in_the_warning_band_is_a_warning(tmp_path: Path) -> None:
    paths = paths_in(tmp_path)
    write_budget_json(paths, budget_over_limit(limit=320))  # 300 of 320: 93.75%
    [warning] = annotations_for_reports(paths.reports, ["budget"])
    assert warning.level == "warning" and "93.8%" in warning.message and warning.file == "requirements.in"


def test_a_failed_report_without_findings_and_a_missing_one_still_annotate(tmp_path: Path) -> None:
    paths = paths_in(tmp_path)
    write_report(paths, "deploy", False, {"error": "upload refused", "fix": "check the bucket policy"})
    write_report(paths, "abi", True, {})
    result = ci_github("annotate", str(paths.reports), "--check", "deploy", "abi", "smoke")
    lines = result.stdout.splitlines()
    assert "::error title=deploy check failed::upload refused%0Afix: check the bucket policy" in lines
    assert any(
        line.startswith("::error title=smoke check did not finish::the smoke check wrote no report") for line in lines
    )
    assert len(lines) == 2, "a passing report gives no annotation"


def test_many_findings_are_capped_per_report(tmp_path: Path) -> None:
    paths = paths_in(tmp_path)
    write_report(paths, "abi", False, {}, findings=[Finding("abi", "error", f"bad {n}") for n in range(20)])
    found = annotations_for_reports(paths.reports, ["abi"])
    assert len(found) == MAX_PER_REPORT and found[-1].message.startswith("and 13 more")


@pytest.mark.parametrize("check", CHECKS)
def test_every_check_report_renders_a_job_summary(check: str, tmp_path: Path) -> None:
    paths = paths_in(tmp_path)
    finding = Finding(check, "error", f"{check} went wrong | badly", f"fix the {check} thing", "requirements.in", 3)
    report = write_report(paths, check, False, {"detail": 1}, findings=[finding, Finding(check, "notice", "fyi")])
    summary = tmp_path / "summary.md"
    result = ci_github("summary", str(report), env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert result.returncode == 0, result.stderr
    text = summary.read_text()
    assert text.startswith(f"### {check}: ❌ FAILED (1 error(s))")
    assert f"| ❌ | `requirements.in:3` | {check} went wrong \\| badly | fix the {check} thing |" in text
    assert "| ℹ️ |  | fyi |" in text


def test_summary_of_a_passing_report_names_the_bytes_it_judged(tmp_path: Path) -> None:
    from ci.snapshot import take

    paths = paths_in(tmp_path)
    paths.build.mkdir(parents=True)
    paths.layer_zip.write_bytes(b"layer")
    snapshot = take(paths, paths.layer_zip, "layer.zip")
    report = write_report(paths, "abi", True, {}, judged=[snapshot])
    result = ci_github("summary", str(report), str(paths.report("smoke")))
    assert result.stdout.startswith("### abi: ✅ passed\n\nJudged: `layer.zip` " + snapshot.sha256[:12])
    assert "No findings." in result.stdout and "smoke.json** was not produced" in result.stdout
