"""python -m ci unlock --reason TEXT: break the deploy lock of a deploy or rollback that died."""

from __future__ import annotations

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
    from ci.deploy.deploy_lock import break_lock, describe_owner, lock_key, owner
    from ci.deploy.stack import read_outputs
    from ci.deploy.target import deployment_target
    from ci.reports import write_report

    reason = str(args.reason).strip()
    if not reason:
        raise PipelineError("--reason is empty", "say why the lock is broken, e.g. --reason 'run 123 was killed'")
    breaker = owner("unlock", "")
    with deployment_target(config, paths) as aws, readable_aws_errors("unlock", aws.timeouts):
        stack = read_outputs(aws, config)
        broken, free = break_lock(
            aws.s3, stack.bucket, lock_key(stack.key_prefix, config.function.name), breaker, reason
        )
    report = paths.report("unlock")
    if broken is None:
        state = "no lock object" if free is None else ("released" if free.record.get("released_at") else "broken")
        logs.result(logger, f"nothing to break: the deploy lock of {config.function.name} on {aws.where} is {state}")
        write_report(paths, "unlock", True, {"status": "not held", "lock": state})
        logger.info(f"report: {report}")
        return 0
    holder = describe_owner(broken.holder)
    logs.result(
        logger, f"broke the deploy lock {broken.uri} held by {holder} since {broken.holder.get('acquired_at', '?')}"
    )
    logs.result(logger, f"  broken by {broken.record['broken_by']} at {broken.record['broken_at']} (S3 time): {reason}")
    logs.result(
        logger, f"  recorded in {broken.uri}" + (f" (version {broken.version_id})" if broken.version_id else "")
    )
    logs.result(logger, "  if that run is still alive, it stops before its next AWS write")
    write_report(
        paths,
        "unlock",
        True,
        {
            "status": "broken",
            "lock": broken.uri,
            "version_id": broken.version_id,
            "holder": holder,
            "broken_at": broken.record["broken_at"],
            "broken_by": broken.record["broken_by"],
            "reason": reason,
            "holder_record": broken.holder,
        },
    )
    logger.info(f"report: {report}")
    return 0
