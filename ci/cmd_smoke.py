"""`python -m ci smoke`: run build/layer.zip + build/function.zip under awslambdaric, like Lambda."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ci import logs
from ci.config import Config
from ci.paths import BuildPaths

logger = logging.getLogger(__name__)
HELP = "Run the built zips under AWS's runtime interface client, the way Lambda runs them."


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
    from ci.reports import write_report
    from ci.smoke.findings import smoke_findings
    from ci.smoke.harness import run_smoke
    from ci.smoke.summary import render
    from ci.snapshot import take

    manifest = args.manifest or (args.model.with_name("model.json") if args.model else None)
    given = {"layer.zip": args.layer, "function.zip": args.function, "model.joblib": args.model, "model.json": manifest}
    # Snapshot, then judge: the run reads only these copies, and the report names exactly their digests.
    # A run on other files than the build's (--layer/--function/--model) writes smoke-adhoc.json.
    judged = [
        take(paths, args.layer or paths.layer_zip, "layer.zip"),
        take(paths, args.function or paths.function_zip, "function.zip"),
        take(paths, args.model or paths.model, "model.joblib"),
    ]
    # Training's answers, which the runtime must reproduce, for exactly that model. A missing one is
    # refused by run_smoke, after the model's own checks (a model the scan refuses is named first).
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
