"""Reports into the job summary ($GITHUB_STEP_SUMMARY), where a run's page shows them.

A Markdown file is appended as is; a check report (<check>.json) is rendered from the report
contract alone (passed, findings, artifacts), so every check job gets a summary without this
module knowing any check. Off a runner the Markdown goes to stdout, so the step can be tried locally.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from ci.github.workflow_commands import runner_file
from ci.reports import findings_of

# GitHub refuses a step summary over 1 MiB; leave room for the other steps.
MAX_SUMMARY_BYTES = 1_000_000
MAX_ROWS = 50
ICONS = {"error": "❌", "warning": "⚠️", "notice": "ℹ️"}


def summary_text(files: Iterable[Path]) -> str:
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
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"> **{path}** is not readable JSON ({exc}): rerun its check.\n"
    if not isinstance(report, dict):
        return f"> **{path}** does not hold a report object: rerun its check.\n"
    check = str(report.get("check") or path.stem)
    passed = report.get("passed") is True
    findings = findings_of(report, check)
    errors = sum(1 for f in findings if f.severity == "error")
    verdict = "✅ passed" if passed else f"❌ FAILED ({errors} error(s))"
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


def write_summary(files: Iterable[Path], environ: Mapping[str, str] | None = None) -> Path | None:
    """Append the files to the job summary; returns its path, or None when printed to stdout instead."""
    return write_summary_text(summary_text(files), environ)


def write_summary_text(text: str, environ: Mapping[str, str] | None = None) -> Path | None:
    target = runner_file("GITHUB_STEP_SUMMARY", environ)
    if target is None:
        sys.stdout.write(text)
        return None
    with target.open("a", encoding="utf-8") as handle:
        handle.write(text + "\n")
    return target
