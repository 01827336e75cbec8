"""The pin checks as terminal text: one table per check, then its findings."""

from __future__ import annotations

from ci.pins.checks import CheckResult, PinsResult
from ci.tables import text_table


def render_check(check: CheckResult) -> str:
    verdict = "skipped" if check.skipped else ("passed" if check.passed else "FAILED")
    lines = [f"== {check.title}: {verdict}"]
    if check.skipped:
        lines.append(f"   {check.skipped}")
        return "\n".join(lines)
    table = [list(check.columns)] + [[r.package, r.training, r.runtime, r.model, r.status] for r in check.rows]
    keep = [i for i in range(5) if any(row[i] for row in table)]
    columns = [[row[i] for i in keep] for row in table]
    lines.append(text_table(columns[0], columns[1:], indent="   "))
    for finding in check.findings:
        label = {"error": "FAIL", "warning": "warn", "note": "note"}[finding.severity]
        lines.append(f"   {label}: {finding.message}")
        if finding.fix and finding.severity != "note":
            lines.append(f"         fix: {finding.fix}")
    return "\n".join(lines)


def render(result: PinsResult) -> str:
    parts = [render_check(check) for check in result.checks]
    if result.scan is not None:
        scan = result.scan
        parts.append(
            f"scan: protocol {scan.protocol}, {len(scan.references)} referenced names, {scan.arrays} arrays "
            f"({scan.object_arrays} of Python objects, {scan.array_bytes:,} bytes of array data skipped), "
            f"compression {result.model_info.get('compression')}"
        )
    return "\n\n".join(parts)
