"""Smoke failures as report findings: an event's failure on its event file, any other on the handler.

The event file says what was sent and what was expected; the handler module is what answered.
"""

from __future__ import annotations

from pathlib import Path

from ci.lock.files import display_path
from ci.reports import Finding

EVENT_FIX = "make the handler answer this event as its `expect` says (status, error_field), or correct the event file"
OTHER_FIX = "see the log tail in build/reports/smoke.json; reproduce with `python -m ci smoke`"


def smoke_findings(
    failures: list[str], warnings: list[str], events_dir: Path, handler: str, root: Path
) -> list[Finding]:
    """`handler`: function.handler (`package.module.function`), whose module file gets non-event failures."""
    handler_file = "/".join(handler.split(".")[:-1]) + ".py"
    events = {path.stem: path for path in sorted(events_dir.glob("*.json"))}
    findings = []
    for failure in failures:
        head = failure.split(":", 1)[0]
        name = head.removeprefix("event ") if head.startswith("event ") else None
        if name in events:
            # A wrong number carries its own fix (retrain, which versions differ): the event file is not at fault.
            message, _, fix = failure.partition("; fix: ")
            findings.append(Finding("smoke", "error", message, fix or EVENT_FIX, display_path(events[name], root)))
        else:
            findings.append(Finding("smoke", "error", failure, OTHER_FIX, handler_file))
    findings += [Finding("smoke", "warning", warning, "", handler_file) for warning in warnings]
    return findings
