"""What a step hands its runner: annotations, the job summary, outputs, and the verify gate's verdict, from the
report contract alone (no check by name); off a runner the text goes to stdout, so a step can be tried locally."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from ci.errors import CheckFailedError, PipelineError
from ci.reports import findings_of

# GitHub shows at most 10 errors per step: keep each report's share readable.
MAX_PER_REPORT = 8
TITLES = {"error": "{check} check failed", "warning": "{check} check warning"}  # notices stay in the summary
# GitHub refuses a step summary over 1 MiB; leave room for the other steps.
MAX_SUMMARY_BYTES = 1_000_000
MAX_ROWS = 50
ICONS = {"error": "❌", "warning": "⚠️", "notice": "ℹ️"}


def escape_data(text: str) -> str:
    """The runner's escaping: without it a multi-line message is cut at its first line."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


class Annotation(NamedTuple):
    """One line GitHub shows on the run and on the pull request's Files tab."""

    level: str  # error | warning | notice
    message: str
    title: str | None = None
    file: str | None = None
    line: int | None = None

    def render(self) -> str:
        props = [f"file={self.file}"] if self.file else []
        props += [f"line={self.line}"] if self.line else []
        props += [f"title={self.title}"] if self.title else []
        escaped = [escape_data(prop).replace(":", "%3A").replace(",", "%2C") for prop in props]
        return f"::{self.level}" + (" " + ",".join(escaped) if props else "") + f"::{escape_data(self.message)}"


def runner_file(variable: str) -> Path | None:
    """The file behind $GITHUB_STEP_SUMMARY / $GITHUB_OUTPUT, or None when not on a runner."""
    value = os.environ.get(variable, "")
    return Path(value) if value else None


def append_outputs(values: Mapping[str, str]) -> str:
    """Append `key=value` lines to $GITHUB_OUTPUT; returns the text (printed when not on a runner)."""
    for key, value in values.items():
        if "\n" in value or "\r" in value:
            raise ValueError(f"output {key!r} must be a single line")
    text = "".join(f"{key}={value}\n" for key, value in values.items())
    target = runner_file("GITHUB_OUTPUT")
    if target is not None:
        with target.open("a", encoding="utf-8") as handle:
            handle.write(text)
    return text


def write_summary_text(text: str) -> Path | None:
    """Append to the job summary; returns its path, or None when printed to stdout instead."""
    target = runner_file("GITHUB_STEP_SUMMARY")
    if target is None:
        sys.stdout.write(text)
        return None
    with target.open("a", encoding="utf-8") as handle:
        handle.write(text + "\n")
    return target


def read_json_report(path: Path) -> dict[str, Any] | str:
    """The report, or what is wrong with it (a step reading reports never stops at a damaged one)."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"is not readable JSON ({exc})"
    return report if isinstance(report, dict) else "does not hold a report object"


def annotations_for_reports(reports: Path, checks: Iterable[str] = ()) -> list[Annotation]:
    """Annotations for the reports in `reports`: all of them, or only `checks`, each of which must exist."""
    checks = list(checks)
    if checks:
        paths = [reports / f"{check}.json" for check in checks]
    else:
        paths = sorted(reports.glob("*.json")) if reports.is_dir() else []
    annotations: list[Annotation] = []
    for path in paths:
        if not path.is_file():
            problem = (
                f"the {path.stem} check wrote no report ({path}): it stopped before judging, "
                "see the error printed by its step above"
            )
            annotations.append(Annotation("error", problem, f"{path.stem} check did not finish"))
            continue
        report = read_json_report(path)
        if isinstance(report, str):
            annotations.append(Annotation("error", f"{path} {report}", "unreadable report"))
            continue
        check = str(report.get("check") or path.stem)
        found = [
            Annotation(
                f.severity,
                f.message + (f"\nfix: {f.fix}" if f.fix else ""),
                TITLES[f.severity].format(check=check),
                f.file,
                f.line,
            )
            for f in findings_of(report, check)
            if f.severity in TITLES
        ]
        if len(found) > MAX_PER_REPORT:
            rest = len(found) - MAX_PER_REPORT + 1
            found[MAX_PER_REPORT - 1 :] = [
                Annotation("error", f"and {rest} more: see build/reports/{check}.json", f"{check} check failed")
            ]
        annotations += found
    return annotations


def summary_text(files: Iterable[Path]) -> str:
    """A .md file as is, a <check>.json report rendered, cut to what GitHub accepts."""
    parts = []
    for file in files:
        if not file.is_file():
            parts.append(f"> **{file}** was not produced: its check stopped before writing it (see the log).\n")
        elif file.suffix == ".json":
            parts.append(report_markdown(file))
        else:
            parts.append(file.read_text(encoding="utf-8").rstrip() + "\n")
    text = "\n".join(parts)
    encoded = text.encode()
    if len(encoded) > MAX_SUMMARY_BYTES:
        text = encoded[:MAX_SUMMARY_BYTES].decode(errors="ignore") + "\n\n_(truncated)_\n"
    return text


def report_markdown(path: Path) -> str:
    """A check report as a heading with its verdict, the artifacts it judged and a table of its findings."""
    report = read_json_report(path)
    if isinstance(report, str):
        return f"> **{path}** {report}: rerun its check.\n"
    check = str(report.get("check") or path.stem)
    findings = findings_of(report, check)
    errors = sum(1 for f in findings if f.severity == "error")
    verdict = "✅ passed" if report.get("passed") is True else f"❌ FAILED ({errors} error(s))"
    lines = [f"### {check}: {verdict}", ""]
    artifacts = report.get("artifacts") or {}
    if isinstance(artifacts, dict) and artifacts:
        judged = ", ".join(f"`{name}` {str(digest)[:12]}" for name, digest in sorted(artifacts.items()))
        lines += [f"Judged: {judged} (sha256 of the bytes read).", ""]
    if not findings:
        return "\n".join([*lines, "No findings.", ""])
    lines += ["| | Where | Finding | Fix |", "|---|---|---|---|"]
    for finding in findings[:MAX_ROWS]:
        where = f"`{finding.file}:{finding.line}`" if finding.file and finding.line else f"`{finding.file}`"
        lines.append(
            f"| {ICONS[finding.severity]} | {where if finding.file else ''} | {_cell(finding.message)} "
            f"| {_cell(finding.fix)} |"
        )
    if len(findings) > MAX_ROWS:
        lines.append(f"\n_and {len(findings) - MAX_ROWS} more in `{path.name}`_")
    return "\n".join([*lines, ""])


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\r", "").replace("\n", "<br>")


def gate(needs_env: str, required: Iterable[str]) -> int:
    """The verify workflow's last job: a skipped job does not fail a reusable workflow, so anything but success does."""
    needs_text = os.environ.get(needs_env)
    if needs_text is None:
        raise PipelineError(
            f"environment variable {needs_env} is not set",
            f"in the step add `env: {needs_env}: ${{{{ toJSON(needs) }}}}`",
        )
    try:
        needs = json.loads(needs_text)
    except ValueError as exc:
        raise PipelineError(f"the needs context is not JSON ({exc})", "pass ${{ toJSON(needs) }}") from exc
    if not isinstance(needs, dict):
        raise PipelineError("the needs context is not a JSON object", "pass ${{ toJSON(needs) }}")
    results = {}
    for job in required:
        entry = needs.get(job)
        results[job] = str(entry.get("result", "missing")) if isinstance(entry, dict) else "missing"
    passed = bool(results) and all(result == "success" for result in results.values())
    icon = {"success": "✅", "failure": "❌", "cancelled": "⏹️", "skipped": "⏭️"}
    rows = [f"| {job} | {icon.get(result, '❓')} {result} |" for job, result in results.items()]
    verdict = "all checks passed" if passed else "NOT verified: deploy is blocked"
    write_summary_text("\n".join([f"### Verify: {verdict}", "", "| job | result |", "|---|---|", *rows, ""]))
    append_outputs({"verified": "true" if passed else "false"})
    if not passed:
        failed = ", ".join(f"{job} ({state})" for job, state in results.items() if state != "success")
        raise CheckFailedError(
            f"not verified: {failed or 'no job was named'}",
            "open the failed jobs above; their annotations name the cause. Nothing is deployed until all pass",
        )
    return 0
