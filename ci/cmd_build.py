"""`python -m ci build`: install the lock for the target, prune, verify, zip; write build.json."""

from __future__ import annotations

import argparse

from ci.config import Config
from ci.paths import BuildPaths

HELP = "Install the lock for the target, prune, verify, and write build/layer.zip and build/function.zip."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bytecode", choices=["runtime", "all", "none"], default=None, help="override build.bytecode")
    parser.add_argument(
        "--compact",
        action="store_true",
        help="compact profile: sourceless bytecode for traced modules + remove files the trace never used",
    )


def run(args: argparse.Namespace, config: Config, paths: BuildPaths) -> int:
    from dataclasses import replace

    from ci.errors import PipelineError
    from ci.layer.build import build_layer
    from ci.reports import write_report

    overrides = dict(config.build)
    if args.compact:
        overrides.update(sourceless=True, prune_unimported=True)
    if args.bytecode:
        overrides["bytecode"] = args.bytecode
    config = replace(config, build=overrides)
    try:
        data = build_layer(config, paths)
    except PipelineError as exc:
        write_report(paths, "build", False, {"error": exc.problem, "fix": exc.fix})
        raise
    report = write_report(paths, "build", True, data)
    print(f"build:    passed; report {report}")
    return 0
