"""python -m ci unlock --reason TEXT: break the deploy lock of a deploy or rollback that died."""

import argparse
import logging

from ci import logs
from ci.config import Config
from ci.errors import PipelineError
from ci.paths import BuildPaths

logger = logging.getLogger(__name__)
HELP = "Break the deploy lock on purpose (its holder died): names the holder, records who broke it and why."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reason", required=True, metavar="TEXT", help="why, recorded in the lock object and the report"
    )


def run(args: argparse.Namespace, config: Config, paths: BuildPaths) -> int:
    from ci.deploy.aws import readable_aws_errors
    from ci.deploy.deploy_lock import break_lock, lock_key, owner
    from ci.deploy.target import deployment_target, read_outputs
    from ci.reports import write_report

    reason = str(args.reason).strip()
    if not reason:
        raise PipelineError("--reason is empty", "say why the lock is broken, e.g. --reason 'run 123 was killed'")
    breaker = owner("unlock", "")
    with deployment_target(config, paths) as aws, readable_aws_errors("unlock", aws.timeouts):
        stack = read_outputs(aws, config)
        report = break_lock(aws.s3, stack.bucket, lock_key(stack.key_prefix, config.function.name), breaker, reason)
    if report["status"] == "not held":
        lines = [f"nothing to break: the deploy lock of {config.function.name} on {aws.where} is {report['lock']}"]
    else:
        version = f" (version {report['version_id']})" if report["version_id"] else ""
        since = report["holder_record"].get("acquired_at", "?")
        lines = [
            f"broke the deploy lock {report['lock']} held by {report['holder']} since {since}",
            f"  broken by {report['broken_by']} at {report['broken_at']} (S3 time): {reason}",
            f"  recorded in {report['lock']}{version}",
            "  if that run is still alive, it stops before its next AWS write",
        ]
    for line in lines:
        logs.result(logger, line)
    write_report(paths, "unlock", True, report)
    logger.info(f"report: {paths.report('unlock')}")
    return 0
