"""Every check's result as build/reports/<check>.json, in one shape, tied to the exact bytes it judged: `artifacts`
holds the digests of the snapshots a check read (never hashed at write time), which deploy compares with its uploads."""

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Self

from ci.errors import PipelineError
from ci.paths import BuildPaths
from ci.snapshot import Snapshot

REPORT_FORMAT = 1
SEVERITIES = ("error", "warning", "notice")
CONTRACT_KEYS = ("format", "check", "passed", "artifacts", "findings")

# The deployable artifacts each gated check must have judged (read from a snapshot) for deploy to trust it.
JUDGES: dict[str, tuple[str, ...]] = {
    "build": ("layer.zip", "function.zip"),
    "abi": ("layer.zip",),
    "budget": ("layer.zip", "function.zip"),
    "pins": ("model.joblib",),
    "smoke": ("layer.zip", "function.zip", "model.joblib"),
}


@dataclass(frozen=True)
class Finding:
    """One thing a check found: what, how bad, how to fix it, and where (repository-relative file, 1-based line)."""

    check: str
    severity: str  # error | warning | notice
    message: str
    fix: str = ""
    file: str | None = None
    line: int | None = None

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"finding severity {self.severity!r} is not one of {SEVERITIES}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], check: str) -> Self:
        """A finding as a report holds it; unknown severities read as errors (never hide a failure)."""
        severity, line = data.get("severity"), data.get("line")
        return cls(
            check=str(data.get("check") or check),
            severity=severity if severity in SEVERITIES else "error",
            message=str(data.get("message") or ""),
            fix=str(data.get("fix") or ""),
            file=str(data["file"]) if data.get("file") else None,
            line=line if isinstance(line, int) and not isinstance(line, bool) and line > 0 else None,
        )


def sha256_file(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def build_artifacts(paths: BuildPaths) -> dict[str, Path]:
    return {"layer.zip": paths.layer_zip, "function.zip": paths.function_zip, "model.joblib": paths.model}


def report_name(paths: BuildPaths, check: str, inputs: Mapping[str, Path | None]) -> str:
    """`<check>-adhoc` unless every input is the build's own: a run on anything else never passes or blocks a build."""
    own = {**build_artifacts(paths), "model.json": paths.model_manifest}
    for name, given in inputs.items():
        if given is not None and (name not in own or given.resolve() != own[name].resolve()):
            return f"{check}-adhoc"
    return check


def failure_finding(check: str, data: Mapping[str, Any]) -> Finding:
    """A failed report without error findings still says why: its `error`/`fix` if it has them."""
    message = str(data.get("error") or f"the {check} check failed: see build/reports/{check}.json")
    return Finding(check, "error", message, str(data.get("fix") or f"rerun `python -m ci {check}` and read its log"))


def write_report(
    paths: BuildPaths,
    check: str,
    passed: bool,
    data: Mapping[str, Any],
    findings: Iterable[Finding] | None = None,
    judged: Iterable[Snapshot] = (),
    inputs: Mapping[str, Path | None] | None = None,
) -> Path:
    """Write build/reports/<check>.json (or -adhoc, see report_name); `judged` are the snapshots the check read."""
    found = list(findings or ())
    if passed and any(f.severity == "error" for f in found):
        raise ValueError(f"the {check} report says passed but carries error findings")
    if not passed and not any(f.severity == "error" for f in found):
        found.append(failure_finding(check, data))
    clash = sorted(set(CONTRACT_KEYS) & set(data))
    if clash:
        raise ValueError(f"the {check} report's details use reserved keys {clash}")
    name = report_name(paths, check, inputs or {})
    report = {
        "format": REPORT_FORMAT,
        "check": name,
        "passed": passed,
        "artifacts": {snapshot.name: snapshot.sha256 for snapshot in judged},
        "findings": [finding.to_dict() for finding in found],
        **data,
    }
    paths.reports.mkdir(parents=True, exist_ok=True)
    target = paths.report(name)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")  # temp + rename: never a torn report
    partial.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    partial.replace(target)
    return target


def findings_of(report: Mapping[str, Any], check: str) -> list[Finding]:
    raw = report.get("findings")
    found = [Finding.from_dict(item, check) for item in raw if isinstance(item, dict)] if isinstance(raw, list) else []
    if report.get("passed") is not True and not any(f.severity == "error" for f in found):
        found.append(failure_finding(check, report))
    return found


def read_report(paths: BuildPaths, check: str) -> dict[str, Any]:
    target = paths.report(check)
    if not target.is_file():
        raise PipelineError(f"{target} not found: the {check} check has not run", f"run `python -m ci {check}`")
    try:
        report: dict[str, Any] = json.loads(target.read_text())
    except json.JSONDecodeError as exc:
        raise PipelineError(f"{target} is not valid JSON ({exc})", f"rerun `python -m ci {check}`") from exc
    if report.get("format") != REPORT_FORMAT:
        raise PipelineError(
            f"{target} has report format {report.get('format')!r}, expected {REPORT_FORMAT}",
            f"rerun `python -m ci {check}` with this version of the pipeline",
        )
    return report
