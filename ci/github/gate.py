"""The verify workflow's last job: passes only if every needed job succeeded.

A job skipped by a failure upstream does not fail a reusable workflow by itself, so callers
(deploy) would otherwise see "success" with checks that never ran. This gate turns skipped,
cancelled or failed into a failure, and sets the `verified` output only when all succeeded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ci.errors import CheckFailedError, PipelineError


@dataclass(frozen=True)
class GateResult:
    results: dict[str, str]  # job -> success | failure | cancelled | skipped | missing

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(result == "success" for result in self.results.values())

    def markdown(self) -> str:
        icon = {"success": "✅", "failure": "❌", "cancelled": "⏹️", "skipped": "⏭️"}
        rows = [f"| {job} | {icon.get(result, '❓')} {result} |" for job, result in self.results.items()]
        verdict = "all checks passed" if self.passed else "NOT verified: deploy is blocked"
        return "\n".join([f"### Verify: {verdict}", "", "| job | result |", "|---|---|", *rows, ""])


def parse_needs(text: str) -> dict[str, Any]:
    """The `needs` context, as `${{ toJSON(needs) }}` renders it."""
    try:
        needs = json.loads(text)
    except ValueError as exc:
        raise PipelineError(f"the needs context is not JSON ({exc})", "pass ${{ toJSON(needs) }}") from exc
    if not isinstance(needs, dict):
        raise PipelineError("the needs context is not a JSON object", "pass ${{ toJSON(needs) }}")
    return needs


def evaluate(needs: dict[str, Any], required: Iterable[str]) -> GateResult:
    results = {}
    for job in required:
        entry = needs.get(job)
        results[job] = str(entry.get("result", "missing")) if isinstance(entry, dict) else "missing"
    return GateResult(results)


def require_success(result: GateResult) -> None:
    if not result.passed:
        failed = ", ".join(f"{job} ({state})" for job, state in result.results.items() if state != "success")
        raise CheckFailedError(
            f"not verified: {failed or 'no job was named'}",
            "open the failed jobs above; their annotations name the cause. Nothing is deployed until all pass",
        )
