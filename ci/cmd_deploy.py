"""python -m ci deploy: upload the verified artifacts, publish versions, check, then move the alias."""

import argparse
import logging
import time

from ci import logs
from ci.config import Config
from ci.deploy.target import add_target_argument
from ci.paths import BuildPaths

logger = logging.getLogger(__name__)
HELP = "Upload the verified artifacts, publish layer and function versions, move the alias."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_argument(parser)
    parser.add_argument(
        "--commit",
        metavar="SHA",
        help="the commit these artifacts were built from, recorded on the published version "
        "(default: $GITHUB_SHA, else `git rev-parse HEAD`)",
    )
    parser.add_argument(
        "--allow-older",
        action="store_true",
        help="deploy even if the commit is older than the live version's (or cannot be placed); "
        "prefer `python -m ci rollback` to go back",
    )


def run(args: argparse.Namespace, config: Config, paths: BuildPaths) -> int:
    from ci.deploy.artifacts import check_gate, local_artifacts
    from ci.deploy.deployer import deploy, detect
    from ci.deploy.target import deployment_target

    artifacts = local_artifacts(paths)  # snapshots: the gate and the uploads read the same bytes
    check_gate(paths, artifacts, config.root)  # refuse before starting anything, even the embedded server
    provenance = detect(config.root, args.commit)
    started = time.time()
    try:
        with deployment_target(config, paths, args.target) as aws:
            outcome = deploy(
                config, paths, aws, artifacts=artifacts, provenance=provenance, allow_older=args.allow_older
            )
    finally:
        shift_summary(paths, started)
    for line in outcome.summary():
        logs.result(logger, line)
    logger.info(f"report: {paths.report('deploy')}")
    return 0


def shift_summary(paths: BuildPaths, started: float) -> None:
    """On a runner, a gradual deploy's steps go to the job summary, whether it completed or rolled back."""
    import json

    from ci.github.api import runner_file, write_summary_text

    written = paths.report("deploy")
    if runner_file("GITHUB_STEP_SUMMARY") is None or not written.is_file() or written.stat().st_mtime < started:
        return
    report = json.loads(written.read_text())
    shifted = report.get("shift") or {}
    if not shifted.get("steps"):
        return
    version = report.get("function_version", "?")
    lines = [
        f"### deploy: {shifted.get('strategy')} shift {shifted.get('outcome')} (version {version})",
        "",
        f"Alarms watched: {', '.join(f'`{name}`' for name in shifted.get('alarms', [])) or 'none'}",
        "",
        "| Time (UTC) | Weight on the new version | Alarm reads | Alarms at the last read |",
        "|---|---|---|---|",
    ]
    for step in shifted["steps"]:
        alarms = step.get("undo") or ", ".join(f"{name}: {state}" for name, state in step.get("alarms", {}).items())
        lines.append(f"| {step['at']} | {step['weight_percent']}% | {step.get('alarm_reads', '')} | {alarms} |")
    write_summary_text("\n".join([*lines, ""]))
