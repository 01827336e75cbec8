"""ABI violations as report findings: one per distribution, on its pin in the layer lock.

The fix for a binary that cannot load is a different pin, so a reviewer is sent to the line of
requirements-layer.txt that installed it, not to a file inside the zip they never edit.
"""

from __future__ import annotations

from pathlib import Path

from ci.abi.check import Violation
from ci.errors import PipelineError
from ci.lock.lockfile import read_lock
from ci.reports import Finding

FIX = (
    "pin a version of {what} with a wheel for the target in requirements.in, "
    "then `python -m ci lock` and `python -m ci build`"
)


def abi_findings(violations: list[Violation], layer_lock: Path, lock_display: str) -> list[Finding]:
    by_distribution: dict[str, list[Violation]] = {}
    for violation in violations:
        by_distribution.setdefault(violation.distribution or "", []).append(violation)
    lines = _pin_lines(layer_lock, [name for name in by_distribution if name])
    findings = []
    for distribution, group in by_distribution.items():
        first = group[0]
        what = distribution or "the distribution that ships it"
        message = (
            f"{distribution or 'a file of no known distribution'}: {len(group)} file(s) will not load on the "
            f"target; e.g. {first.path} ({first.rule}): {first.message}"
        )
        findings.append(Finding("abi", "error", message, FIX.format(what=what), lock_display, lines.get(distribution)))
    return findings


def _pin_lines(lock: Path, names: list[str]) -> dict[str, int]:
    try:
        parsed = read_lock(lock)
    except PipelineError:
        return {}
    return {name: pin.line for name in names if (pin := parsed.get(name)) is not None}
