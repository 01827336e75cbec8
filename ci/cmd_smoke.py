"""`python -m ci smoke`: run build/layer.zip + build/function.zip under awslambdaric, like Lambda (ci/smoke/)."""

import argparse
import logging
from pathlib import Path
from typing import Any

from ci import logs
from ci.config import Config
from ci.paths import BuildPaths
from ci.reports import Finding, write_report
from ci.smoke.events import response_parts
from ci.units import as_mb

logger = logging.getLogger(__name__)
HELP = "Run the built zips under AWS's runtime interface client, the way Lambda runs them."
EVENT_FIX = "make the handler answer this event as its `expect` says (status, error_field), or correct the event file"
OTHER_FIX = "see the log tail in build/reports/smoke.json; reproduce with `python -m ci smoke`"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layer", type=Path, help="layer zip (default: <build-dir>/layer.zip)")
    parser.add_argument("--function", type=Path, help="function zip (default: <build-dir>/function.zip)")
    parser.add_argument("--model", type=Path, help="model bundle (default: <build-dir>/model/model.joblib)")
    parser.add_argument(
        "--manifest",
        type=Path,
        help="the model's model.json, whose answers the runtime must reproduce (default: next to --model)",
    )
    parser.add_argument("--events", type=Path, help="directory of event files (default: smoke.events)")


def run(args: argparse.Namespace, config: Config, paths: BuildPaths) -> int:
    from ci.smoke.harness import run_smoke
    from ci.snapshot import take

    manifest = args.manifest or (args.model.with_name("model.json") if args.model else None)
    given = {"layer.zip": args.layer, "function.zip": args.function, "model.joblib": args.model, "model.json": manifest}
    # Snapshot, then judge: the run reads only these copies; other files than the build's write smoke-adhoc.json.
    built = {"layer.zip": paths.layer_zip, "function.zip": paths.function_zip, "model.joblib": paths.model}
    judged = [take(paths, given[name] or path, name) for name, path in built.items()]
    # Training's answers for exactly that model; run_smoke refuses a missing one after the model's own checks.
    answers = manifest or paths.model_manifest
    if answers.is_file():
        judged.append(take(paths, answers, "model.json"))
        answers = judged[-1].path
    events_dir = args.events or config.smoke.events
    result = run_smoke(
        judged[0].path, judged[1].path, judged[2].path, config, paths, events_dir=events_dir, manifest=answers
    )
    findings = smoke_findings(
        result.failures, result.report.get("warnings", []), events_dir, config.function.handler, config.root
    )
    report = write_report(
        paths, "smoke", not result.failures, result.report, findings=findings, judged=judged, inputs=given
    )
    logs.result(logger, render(result.report, result.failures))
    logger.info(f"report: {report}")
    return 0 if not result.failures else 1


def smoke_findings(
    failures: list[str], warnings: list[str], events_dir: Path, handler: str, root: Path
) -> list[Finding]:
    """An event's failure on its event file (what was sent and expected), any other on the handler's module."""
    from ci.lock.lockfile import display_path

    handler_file = "/".join(handler.split(".")[:-1]) + ".py"
    events = {path.stem: path for path in sorted(events_dir.glob("*.json"))}
    findings = []
    for failure in failures:
        name = failure.split(":", 1)[0].removeprefix("event ")
        if failure.startswith("event ") and name in events:
            # A wrong number carries its own fix (retrain, which versions differ): the event file is not at fault.
            message, _, fix = failure.partition("; fix: ")
            findings.append(Finding("smoke", "error", message, fix or EVENT_FIX, display_path(events[name], root)))
        else:
            findings.append(Finding("smoke", "error", failure, OTHER_FIX, handler_file))
    findings += [Finding("smoke", "warning", warning, "", handler_file) for warning in warnings]
    return findings


def render(report: dict[str, Any], failures: list[str]) -> str:
    """The terminal summary; each cause once: a run that never started is its failure and the proofs it lacks."""
    lines = []
    if "events" in report or report.get("init"):
        init = report.get("init", {})
        if "duration_s" not in init:
            lines.append(f"init: {init.get('state', 'not reached')}")
        elif "estimate_at_memory_s" in init:
            estimate = f"estimate at {report['memory_mb']} MB: {init['estimate_at_memory_s']:.2f} s"
            lines.append(f"init (imports + model load): {init['duration_s']:.2f} s ({estimate})")
        else:
            lines.append(f"init (imports + model load): {init['duration_s']:.2f} s under emulation (not Lambda's time)")
        if restored := init.get("snapstart"):
            lines.append(
                f"SnapStart: {' -> '.join(restored['order'])}; restore to first request"
                f" {restored.get('restore_s', '?')} s here (Lambda's restore latency is measured only on Lambda)"
            )
        events = report.get("events", [])
        lines.append(f"events passed: {sum(1 for event in events if event['passed'])}/{len(events)}")
        lines += [f"  {'ok  ' if event['passed'] else 'FAIL'} {event['event']:<30} {answer(event)}" for event in events]
        warm = report.get("warm") or {}
        if warm.get("invocations"):
            lines.append(
                f"warm invocations ({warm['invocations']} x {warm['event']}): p50 {warm['p50_ms']:.2f} ms,"
                f" p95 {warm['p95_ms']:.2f} ms, max {warm['max_ms']:.2f} ms"
            )
        if report.get("peak_rss_bytes"):
            lines.append(f"peak RSS: {report['peak_rss_bytes'] / 2**20:.0f} MB of {report['memory_mb']} MB")
        if trace := report.get("import_trace"):
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
        lines += [f"warning: {warning}" for warning in report.get("warnings", [])]
    # The proofs this run could not make; a reason a failure line already gives is not repeated.
    proofs = report.get("proofs") or {}
    missing = {name: how.removeprefix("missing: ") for name, how in proofs.items() if how.startswith("missing")}
    said = " ".join(failures)
    lines += [f"proof missing: {name}: {why}" for name, why in missing.items() if why not in said]
    if repeated := [name for name, why in missing.items() if why in said]:
        lines.append(f"proof missing: {', '.join(repeated)} (why: below); deploy refuses this report")
    lines += [f"FAILED: {failure}" for failure in failures]
    lines.append("smoke: passed" if not failures else f"smoke: FAILED ({len(failures)} problem(s))")
    return "\n".join(lines)


def answer(event: dict[str, Any]) -> str:
    """What the function answered, in a line: the predictions, or the field a 400 named."""
    response = event.get("response")
    status, body, problem = response_parts(response, isinstance(response, dict) and "statusCode" in response)
    if problem and status is not None:
        return f"{status} (body is not JSON)"
    if not isinstance(body, dict):
        return "no answer" if body is None else f"{type(body).__name__} answer"
    if isinstance(error := body.get("error"), dict):
        return f"{error.get('status', status)} {error.get('field')}: {error.get('message')}"
    predictions = body.get("predictions") or []
    recall = ", ".join(f"{p.get('recall_probability'):.3f}" for p in predictions if isinstance(p, dict))
    days = [p.get("days_until_target") for p in predictions if isinstance(p, dict)]
    until = f"; days until target [{', '.join(f'{d:g}' for d in days)}]" if any(d is not None for d in days) else ""
    return f"{status} recall [{recall}]{until}"
