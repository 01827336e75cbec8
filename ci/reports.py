"""Every check's result as build/reports/<check>.json, tied to the exact artifacts it judged.

Deploy trusts a check only if the SHA-256s recorded here equal the bytes it is about to upload.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ci.errors import PipelineError
from ci.paths import BuildPaths

REPORT_FORMAT = 1


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def artifact_digests(paths: BuildPaths) -> dict[str, str]:
    """SHA-256 of each deployable artifact that exists now (layer.zip, function.zip, model.joblib)."""
    candidates = {"layer.zip": paths.layer_zip, "function.zip": paths.function_zip, "model.joblib": paths.model}
    return {name: sha256_file(path) for name, path in candidates.items() if path.is_file()}


def write_report(paths: BuildPaths, check: str, passed: bool, data: dict[str, Any]) -> Path:
    """Write build/reports/<check>.json with the verdict and the artifacts' digests."""
    paths.reports.mkdir(parents=True, exist_ok=True)
    report = {
        "format": REPORT_FORMAT,
        "check": check,
        "passed": passed,
        "artifacts": artifact_digests(paths),
        **data,
    }
    target = paths.report(check)
    target.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    return target


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
