"""The terminal summary of a smoke run (the report dict is the data; this only renders it)."""

from __future__ import annotations

import json
from typing import Any

from ci.units import as_mb


def render(report: dict[str, Any], failures: list[str]) -> str:
    """Each cause once: a run that never started is its one failure line and the proofs it lacks."""
    if "events" not in report and not report.get("init"):
        return "\n".join([*_missing_proofs(report, failures), *_verdict(failures)])
    lines = []
    init = report.get("init", {})
    if "estimate_at_memory_s" in init:
        lines.append(
            f"init (imports + model load): {init['duration_s']:.2f} s"
            f" (estimate at {report['memory_mb']} MB: {init['estimate_at_memory_s']:.2f} s)"
        )
    elif "duration_s" in init:
        lines.append(f"init (imports + model load): {init['duration_s']:.2f} s under emulation (not Lambda's time)")
    else:
        lines.append(f"init: {init.get('state', 'not reached')}")
    restored = init.get("snapstart")
    if restored:
        lines.append(
            f"SnapStart: {' -> '.join(restored['order'])}; restore to first request {restored.get('restore_s', '?')} s"
            " here (Lambda's restore latency is measured only on Lambda)"
        )
    events = report.get("events", [])
    passed = sum(1 for event in events if event["passed"])
    lines.append(f"events passed: {passed}/{len(events)}")
    lines.extend(f"  {'ok  ' if event['passed'] else 'FAIL'} {event['event']:<30} {answer(event)}" for event in events)
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
            f"layer files imported or mapped: {len(trace['files'])}, {as_mb(trace['imported_bytes'])}"
            f" of {as_mb(trace['shipped_bytes'])} shipped"
            + (f"; never imported: {', '.join(trace['never_imported'])}" if trace["never_imported"] else "")
        )
    if report.get("partial") and report.get("events_run"):  # a run on other events than the committed ones
        lines.append(
            f"partial: ran {', '.join(report.get('events_run', []))}, not exactly the committed events; "
            "deploy refuses this report (run `python -m ci smoke` without --events)"
        )
    lines.extend(f"warning: {warning}" for warning in report.get("warnings", []))
    return "\n".join([*lines, *_missing_proofs(report, failures), *_verdict(failures)])


def _missing_proofs(report: dict[str, Any], failures: list[str]) -> list[str]:
    """The proofs this run could not make; a reason a failure line already gives is not repeated."""
    missing = {name: how.removeprefix("missing: ") for name, how in (report.get("proofs") or {}).items()}
    missing = {name: why for name, why in missing.items() if report["proofs"][name].startswith("missing")}
    said = " ".join(failures)
    lines = [f"proof missing: {name}: {why}" for name, why in missing.items() if why not in said]
    repeated = [name for name, why in missing.items() if why in said]
    if repeated:
        lines.append(f"proof missing: {', '.join(repeated)} (why: below); deploy refuses this report")
    return lines


def _verdict(failures: list[str]) -> list[str]:
    return [
        *(f"FAILED: {failure}" for failure in failures),
        "smoke: passed" if not failures else f"smoke: FAILED ({len(failures)} problem(s))",
    ]


def answer(event: dict[str, Any]) -> str:
    """What the function answered, in a line: the predictions, or the field a 400 named."""
    response = event.get("response")
    if isinstance(response, dict) and "statusCode" in response:
        status: Any = response["statusCode"]
        try:
            body = json.loads(response.get("body") or "null")
        except (TypeError, ValueError):
            return f"{status} (body is not JSON)"
    else:
        body, status = response, None
    if not isinstance(body, dict):
        return "no answer" if body is None else f"{type(body).__name__} answer"
    if "error" in body and isinstance(body["error"], dict):
        error = body["error"]
        return f"{error.get('status', status)} {error.get('field')}: {error.get('message')}"
    predictions = body.get("predictions") or []
    recall = ", ".join(f"{p.get('recall_probability'):.3f}" for p in predictions if isinstance(p, dict))
    days = [p.get("days_until_target") for p in predictions if isinstance(p, dict)]
    until = f"; days until target [{', '.join(f'{d:g}' for d in days)}]" if any(d is not None for d in days) else ""
    return f"{status or 200} recall [{recall}]{until}"
