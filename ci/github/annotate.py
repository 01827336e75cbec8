"""Failing reports as GitHub annotations, each on the file (and line) a person edits to fix it.

Every report carries `findings` (ci.reports): the check already knows where its fix goes (an ABI
violation on its distribution's pin, a lock problem on the wrong pin, a smoke failure on its event
file), so this module only turns findings into workflow commands; it knows no check by name.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ci.github.workflow_commands import Annotation
from ci.reports import Finding, findings_of

# GitHub shows at most 10 errors per step: keep each report's share readable.
MAX_PER_REPORT = 8
ANNOTATED = ("error", "warning")  # notices stay in the job summary
TITLES = {"error": "{check} check failed", "warning": "{check} check warning"}


def annotation(finding: Finding, check: str) -> Annotation:
    message = finding.message + (f"\nfix: {finding.fix}" if finding.fix else "")
    return Annotation(
        finding.severity, message, TITLES[finding.severity].format(check=check), finding.file, finding.line
    )


def annotations_for_report(check: str, report: dict[str, Any]) -> list[Annotation]:
    """The report's error and warning findings (a failed report without any still gets one)."""
    found = [annotation(f, check) for f in findings_of(report, check) if f.severity in ANNOTATED]
    return _cap(check, found)


def _cap(check: str, annotations: list[Annotation]) -> list[Annotation]:
    if len(annotations) <= MAX_PER_REPORT:
        return annotations
    kept = annotations[: MAX_PER_REPORT - 1]
    rest = len(annotations) - len(kept)
    kept.append(Annotation("error", f"and {rest} more: see build/reports/{check}.json", f"{check} check failed", None))
    return kept


def annotations_for_reports(reports: Path, checks: Iterable[str] = ()) -> list[Annotation]:
    """Annotations for the reports in `reports`: all of them, or only `checks`, each of which must exist."""
    checks = list(checks)
    annotations: list[Annotation] = []
    for check in checks:
        if not (reports / f"{check}.json").is_file():
            annotations.append(
                Annotation(
                    "error",
                    f"the {check} check wrote no report ({reports / (check + '.json')}): it stopped before "
                    "judging, see the error printed by its step above",
                    f"{check} check did not finish",
                )
            )
    if checks:
        paths = [reports / f"{check}.json" for check in checks if (reports / f"{check}.json").is_file()]
    else:
        paths = sorted(reports.glob("*.json")) if reports.is_dir() else []
    for path in paths:
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            annotations.append(Annotation("error", f"{path} is not readable JSON ({exc})", "unreadable report"))
            continue
        if isinstance(report, dict):
            annotations.extend(annotations_for_report(str(report.get("check") or path.stem), report))
    return annotations
