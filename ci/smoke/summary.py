"""The terminal summary of a smoke run (the report dict is the data; this only renders it)."""

from __future__ import annotations

from typing import Any


def render(report: dict[str, Any], failures: list[str]) -> str:
    lines = []
    init = report.get("init", {})
    if "duration_s" in init:
        lines.append(
            f"init (imports + model load): {init['duration_s']:.2f} s"
            f" (estimate at {report['memory_mb']} MB: {init['estimate_at_memory_s']:.2f} s)"
        )
    else:
        lines.append(f"init: {init.get('state', 'not reached')}")
    events = report.get("events", [])
    passed = sum(1 for event in events if event["passed"])
    lines.append(f"events passed: {passed}/{len(events)}")
    warm = report.get("warm") or {}
    if warm.get("invocations"):
        lines.append(
            f"warm invocations ({warm['invocations']} x {warm['event']}): p50 {warm['p50_ms']:.2f} ms,"
            f" p95 {warm['p95_ms']:.2f} ms, max {warm['max_ms']:.2f} ms"
        )
    if report.get("peak_rss_bytes"):
        lines.append(f"peak RSS: {report['peak_rss_bytes'] / 2**20:.0f} MB of {report['memory_mb']} MB")
    trace = report.get("import_trace")
    if trace:
        lines.append(
            f"layer files imported or mapped: {len(trace['files'])}, {trace['imported_bytes'] / 1e6:.1f} MB"
            f" of {trace['shipped_bytes'] / 1e6:.1f} MB shipped"
            + (f"; never imported: {', '.join(trace['never_imported'])}" if trace["never_imported"] else "")
        )
    lines.extend(f"warning: {warning}" for warning in report.get("warnings", []))
    lines.extend(f"FAILED: {failure}" for failure in failures)
    lines.append("smoke: passed" if not failures else f"smoke: FAILED ({len(failures)} problem(s))")
    return "\n".join(lines)
