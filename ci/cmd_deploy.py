"""python -m ci deploy: upload the verified artifacts, publish versions, check, then move the alias."""

from __future__ import annotations

import argparse

from ci.config import Config
from ci.paths import BuildPaths

HELP = "Upload the verified artifacts, publish layer and function versions, move the alias."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        choices=("auto", "embedded", "aws"),
        default="auto",
        help="auto (default): boto3's configuration if any, else an embedded moto server; "
        "embedded: always the embedded moto; aws: always boto3's configuration",
    )


def run(args: argparse.Namespace, config: Config, paths: BuildPaths) -> int:
    from ci.deploy.artifacts import local_artifacts
    from ci.deploy.deployer import deploy
    from ci.deploy.gate import check_gate
    from ci.deploy.target import deployment_target

    check_gate(paths, local_artifacts(paths))  # refuse before starting anything, even the embedded server
    with deployment_target(config, args.target) as aws:
        outcome = deploy(config, paths, aws)
    for line in outcome.summary():
        print(line)
    print(f"report: {paths.report('deploy')}")
    return 0
