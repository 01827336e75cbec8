"""What the pin checks produce: table rows and findings per check, and the inputs they judge."""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ci.pins.scan import PickleScan
from ci.reports import Finding as ReportFinding

# Distributions whose objects end up in every scikit-learn model pickle.
CORE_DISTRIBUTIONS = ("scikit-learn", "numpy", "scipy", "joblib")
PANDAS = "pandas"
RETRAIN = (
    "retrain with the training lock installed: `pip install --require-hashes -r {training}` then `python -m training`"
)


@dataclass
class Row:
    package: str
    training: str
    runtime: str
    model: str
    status: str  # ok | FAIL | warn | -


@dataclass
class Finding:
    severity: str  # error | warning | note
    message: str
    fix: str = ""
    file: str | None = None  # repository-relative lock the finding is about, and its 1-based line
    line: int | None = None


@dataclass
class CheckResult:
    name: str
    title: str
    columns: tuple[str, str, str, str, str]
    rows: list[Row] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    skipped: str | None = None

    @property
    def passed(self) -> bool:
        return not any(finding.severity == "error" for finding in self.findings)

    def error(self, message: str, fix: str = "", file: str | None = None, line: int | None = None) -> None:
        self.findings.append(Finding("error", message, fix, file, line))

    def warn(self, message: str, fix: str = "", file: str | None = None, line: int | None = None) -> None:
        self.findings.append(Finding("warning", message, fix, file, line))

    def note(self, message: str) -> None:
        self.findings.append(Finding("note", message))

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "title": self.title,
            "skipped": self.skipped,
            "columns": list(self.columns),
            "rows": [asdict(row) for row in self.rows],
            "findings": [asdict(finding) for finding in self.findings],
        }


@dataclass(frozen=True)
class PinsInputs:
    training_lock: Path
    layer_lock: Path
    model: Path
    manifest: Path
    target_python: str  # the Lambda runtime's Python, e.g. "3.11"
    root: Path  # paths in messages are shown relative to it
    installed: bool = False
    shown_model: Path | None = None  # how messages name the model when `model` is its snapshot
    probe_python: str = sys.executable  # the environment asked whether referenced classes exist
    deployed_model: Path | None = None  # what deploy would upload (build/model/model.joblib)


@dataclass
class PinsResult:
    checks: list[CheckResult]
    scan: PickleScan | None
    model_info: dict[str, Any]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def errors(self) -> list[tuple[str, Finding]]:
        return [(check.name, f) for check in self.checks for f in check.findings if f.severity == "error"]

    def report_findings(self, training_display: str) -> list[ReportFinding]:
        """Every finding in the report contract; one without a file lands on the training lock,
        through which every pin fix (relock or retrain) goes."""
        severity = {"error": "error", "warning": "warning", "note": "notice"}
        return [
            ReportFinding(
                "pins",
                severity[f.severity],
                f"{check.name}: {f.message}",
                f.fix,
                f.file or training_display,
                f.line if f.file else None,
            )
            for check in self.checks
            for f in check.findings
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "checks": {check.name: check.to_dict() for check in self.checks},
            "model": self.model_info,
            "scan": self.scan.to_dict() if self.scan else None,
        }


def display(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)
