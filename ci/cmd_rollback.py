"""python -m ci rollback [--to N]: move the alias back to the previous (or a given) version, verified."""

import argparse
import logging

from ci import logs
from ci.config import Config
from ci.deploy.target import add_target_argument
from ci.errors import PipelineError
from ci.paths import BuildPaths

logger = logging.getLogger(__name__)
HELP = "Move the alias back to the previous (or a given) function version and verify it."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_argument(parser)
    parser.add_argument("--to", metavar="N", help="the function version to move the alias to")
    parser.add_argument("--force", action="store_true", help="move the alias even if the version fails the check")


def run(args: argparse.Namespace, config: Config, paths: BuildPaths) -> int:
    from ci.deploy.aws import readable_aws_errors
    from ci.deploy.deployer import rollback
    from ci.deploy.target import deployment_target

    if args.to is not None and not str(args.to).isdigit():
        raise PipelineError(f"--to {args.to!r} is not a version number", "pass a published version, e.g. --to 3")
    with deployment_target(config, paths, args.target) as aws, readable_aws_errors("rollback", aws.timeouts):
        moved = rollback(config, paths, aws, to=args.to, force=args.force)
    logs.result(
        logger, f"alias {moved['alias']} -> version {moved['to_version']} (was {moved['from_version']}) on {aws.where}"
    )
    return 0
