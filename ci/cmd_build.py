"""`python -m ci build`: install the lock for the target, prune, verify, zip; write build.json."""

import argparse
import logging
from dataclasses import replace
from typing import Any

from ci import logs
from ci.config import Config
from ci.errors import PipelineError
from ci.paths import BuildPaths
from ci.snapshot import Snapshot, take

logger = logging.getLogger(__name__)
HELP = "Install the lock for the target, prune, verify, and write build/layer.zip and build/function.zip."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bytecode", choices=["runtime", "all", "none"], default=None, help="override build.bytecode")
    parser.add_argument(
        "--compact",
        action="store_true",
        help="compact profile: sourceless bytecode for traced modules + remove files the trace never used",
    )
    parser.add_argument(
        "--fresh-proofs",
        action="store_true",
        help="make every proof (imports, trace, prove) again, even one recorded for these exact bytes",
    )


def run(args: argparse.Namespace, config: Config, paths: BuildPaths) -> int:
    from ci.layer.build import build_layer
    from ci.reports import Finding, write_report

    build = config.build
    if args.compact:
        build = replace(build, sourceless=True, prune_unimported=True)
    if args.bytecode:
        build = replace(build, bytecode=args.bytecode)
    try:
        data = build_layer(replace(config, build=build), paths, reuse_proofs=not args.fresh_proofs)
        judged = produced(paths, data)
    except PipelineError as exc:
        finding = Finding("build", "error", exc.problem, exc.fix)
        write_report(paths, "build", False, {"error": exc.problem, "fix": exc.fix}, findings=[finding])
        raise
    report = write_report(paths, "build", True, data, judged=judged)
    logs.result(logger, f"build:    passed; report {report}")
    return 0


def produced(paths: BuildPaths, data: dict[str, Any]) -> list[Snapshot]:
    """Snapshots of the zips the build wrote, refused unless they are the bytes it wrote (build.json names them)."""
    judged = []
    for key, source in (("layer", paths.layer_zip), ("function", paths.function_zip)):
        snapshot = take(paths, source, f"{key}.zip")
        written = data[key]["sha256"]
        if written != snapshot.sha256:
            raise PipelineError(
                f"{source} changed after the build wrote it (sha256 {written[:12]}, now {snapshot.sha256[:12]})",
                "make sure nothing else writes the build directory, then rerun `python -m ci build`",
            )
        judged.append(snapshot)
    return judged
