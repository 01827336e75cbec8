"""Failing reports as GitHub annotations, each pointing at the file a person edits to fix it.

A red job says that something failed; the annotation says what, and where: an ABI violation
lands on the offending distribution's line of requirements-layer.txt, a smoke failure on its event file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ci.github.workflow_commands import Annotation

# GitHub shows at most 10 errors per step: keep each report's share readable.
MAX_PER_REPORT = 8
MB = 1_000_000

# Where the fix for a failing check usually goes (repository paths).
CAUSE_FILES = {
    "lock": "requirements.in",
    "build": "requirements-layer.txt",
    "budget": "requirements.in",
    "abi": "requirements-layer.txt",
    "pins": "training/requirements.txt",
    "smoke": "handler/app.py",
    "deploy": "pipeline.toml",
}
LAYER_LOCK = "requirements-layer.txt"
EVENTS_DIR = "tests/events"


def normalize(name: str) -> str:
    """PEP 503 name, so 'scikit_learn' finds 'scikit-learn==1.3.2'."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_line(lock: Path, distribution: str) -> int | None:
    """1-based line of `distribution==` in a lock file, or None."""
    if not lock.is_file():
        return None
    wanted = normalize(distribution)
    for number, line in enumerate(lock.read_text(encoding="utf-8").splitlines(), start=1):
        name, sep, _ = line.partition("==")
        if sep and not line.startswith((" ", "#")) and normalize(name.strip()) == wanted:
            return number
    return None


def _mb(value: Any) -> str:
    return f"{int(value) / MB:,.1f} MB" if isinstance(value, int) else "?"


def _budget(report: dict[str, Any], root: Path) -> list[Annotation]:
    status = report.get("status")
    used, limit = report.get("used_bytes"), report.get("limit_bytes")
    if status == "fail":
        biggest = ", ".join(
            f"{d.get('name')} {_mb(d.get('unzipped_bytes'))}" for d in (report.get("distributions") or [])[:3]
        )
        fixes = "; ".join(str(s.get("action")) for s in (report.get("suggestions") or [])[:3])
        message = (
            f"unzipped size {used} bytes exceeds the {limit}-byte limit by {report.get('over_limit_bytes')} bytes"
            + (f". Largest: {biggest}" if biggest else "")
            + (f". To remove: {fixes}" if fixes else "")
        )
        return [Annotation("error", message, "Lambda size budget exceeded", CAUSE_FILES["budget"])]
    if status == "warn":
        message = (
            f"unzipped size {used} bytes is {report.get('percent_used')}% of the {limit}-byte limit "
            f"(warning from {report.get('warn_bytes')} bytes); headroom {report.get('headroom_bytes')} bytes"
        )
        return [Annotation("warning", message, "Lambda size budget nearly used", CAUSE_FILES["budget"])]
    return []


def _abi(report: dict[str, Any], root: Path) -> list[Annotation]:
    by_distribution: dict[str, list[dict[str, Any]]] = {}
    for violation in report.get("violations") or []:
        by_distribution.setdefault(str(violation.get("distribution") or ""), []).append(violation)
    annotations = []
    for distribution, violations in by_distribution.items():
        first = violations[0]
        line = lock_line(root / LAYER_LOCK, distribution) if distribution else None
        example = f"{first.get('path')}: {first.get('message')}"
        message = f"{len(violations)} file(s) will not load on the target; e.g. {example}"
        title = f"ABI: {distribution or 'file of no known distribution'}"
        annotations.append(Annotation("error", message, title, LAYER_LOCK, line))
    return annotations


_EVENT_FAILURE = re.compile(r"^event (?P<name>[^\s:]+):")


def _smoke(report: dict[str, Any], root: Path) -> list[Annotation]:
    annotations = []
    for failure in _strings(report.get("failures")):
        match = _EVENT_FAILURE.match(failure)
        file = CAUSE_FILES["smoke"]
        if match:
            name = match.group("name")
            for candidate in (f"{EVENTS_DIR}/{name}", f"{EVENTS_DIR}/{name}.json"):
                if (root / candidate).is_file():
                    file = candidate
                    break
        annotations.append(Annotation("error", failure, "Smoke invocation failed", file))
    return annotations


def _strings(value: Any) -> list[str]:
    """Messages from a list of strings or of dicts with a 'message' (or 'problem')."""
    if isinstance(value, str):
        return [value]
    out = []
    for item in value or []:
        if isinstance(item, dict):
            text = item.get("message") or item.get("problem") or json.dumps(item, sort_keys=True)
            where = item.get("path") or item.get("name")
            out.append(f"{where}: {text}" if where and str(where) not in str(text) else str(text))
        else:
            out.append(str(item))
    return out


def _generic(check: str, report: dict[str, Any]) -> list[Annotation]:
    messages: list[str] = []
    for key in ("failures", "problems", "errors", "mismatches", "violations", "message", "problem"):
        messages.extend(_strings(report.get(key)))
    file = CAUSE_FILES.get(check, f"build/reports/{check}.json")
    title = f"{check} check failed"
    if not messages:
        messages = [f"the {check} check failed: details in build/reports/{check}.json (the job's report artifact)"]
    return [Annotation("error", message, title, file) for message in messages]


_SPECIFIC = {"budget": _budget, "abi": _abi, "smoke": _smoke}


def annotations_for_report(check: str, report: dict[str, Any], root: Path) -> list[Annotation]:
    if check in _SPECIFIC:
        found = _SPECIFIC[check](report, root)
        if found or report.get("passed") is not False:
            return _cap(check, found)
    if report.get("passed") is False:
        return _cap(check, _generic(check, report))
    return []


def _cap(check: str, annotations: list[Annotation]) -> list[Annotation]:
    if len(annotations) <= MAX_PER_REPORT:
        return annotations
    kept = annotations[: MAX_PER_REPORT - 1]
    rest = len(annotations) - len(kept)
    kept.append(Annotation("error", f"and {rest} more: see build/reports/{check}.json", f"{check} check failed", None))
    return kept


def annotations_for_reports(reports: Path, root: Path, checks: Iterable[str] = ()) -> list[Annotation]:
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
                    CAUSE_FILES.get(check),
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
            annotations.extend(annotations_for_report(str(report.get("check") or path.stem), report, root))
    return annotations
