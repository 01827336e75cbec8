"""`python -m ci rollback`: the alias back to the previous version (or --to N), checked as a deploy is and
under the same lock, so it cannot make things worse unless asked to (--force)."""

from __future__ import annotations

import logging
from typing import Any

from ci.config import Config
from ci.deploy.aws import Aws, unless_aws_error
from ci.deploy.deploy_lock import acquire, lock_key, owner
from ci.deploy.deployer import recorded
from ci.deploy.shift import AliasState, point_alias, production_line, published_versions, read_alias, resolve_split
from ci.deploy.stack import read_outputs
from ci.deploy.verify import Candidate, Verifier, default_verifier
from ci.errors import PipelineError
from ci.paths import BuildPaths
from ci.reports import write_report

logger = logging.getLogger(__name__)


def choose_target(lambda_: Any, name: str, state: AliasState, to: str | None) -> tuple[str, list[str]]:
    """(version, new history): --to N, else the version live before the current one."""
    if to is not None:
        return to, [*state.history, to]
    if len(state.history) >= 2:
        return state.history[-2], state.history[:-1]
    older = sorted(int(v["Version"]) for v in published_versions(lambda_, name))
    older = [v for v in older if v < int(state.version)]
    if not older:
        raise PipelineError(
            f"alias {state.name} is on version {state.version} and no earlier version exists to roll back to",
            "deploy a fixed build instead, or name a version with --to N",
        )
    return str(older[-1]), [str(older[-1])]


def rollback(
    config: Config,
    paths: BuildPaths,
    aws: Aws,
    to: str | None = None,
    force: bool = False,
    verifier: Verifier | None = None,
) -> dict[str, Any]:
    """The rollback report: which version the alias moved from and to, and whether the target was checked."""
    name, alias_name = config.function.name, config.function.alias
    stack = read_outputs(aws, config)
    key = lock_key(stack.key_prefix, name)
    clients = (aws.s3, aws.lambda_, aws.cloudformation)
    with acquire(aws.s3, stack.bucket, key, owner("rollback", "")).held(*clients) as lock:
        state = read_alias(aws.lambda_, name, alias_name)
        if state is not None and state.split:
            # A shift that never finished: the new version was never the alias's own, so taking its traffic
            # away IS the rollback; going further back needs --to N.
            shifted = sorted(state.routing)
            restored = resolve_split(aws, config)
            if to is None or restored is None or to == restored.version:
                return report_rollback(paths, alias_name, ", ".join(shifted), restored or state, False)
            state = restored
        if state is None:
            raise PipelineError(
                f"function {name} has no alias {alias_name}: nothing to roll back",
                "run `python -m ci deploy` (the last step of `make pipeline`) first",
            )
        target, history = choose_target(aws.lambda_, name, state, to)
        if target == state.version:
            raise PipelineError(
                f"alias {alias_name} is already on version {target}", "name another version with --to N"
            )
        configuration = unless_aws_error(
            lambda: dict(aws.lambda_.get_function_configuration(FunctionName=name, Qualifier=target)), None
        )
        if configuration is None:
            raise PipelineError(
                f"function {name} has no version {target}", "list them with `aws lambda list-versions-by-function`"
            )
        if not force:
            verdict = (verifier or default_verifier(config, paths))(
                aws, Candidate(name, target, configuration, stack.bucket, stack.key_prefix)
            )
            verdict.require_pass(
                target,
                "the check",
                "roll back to another version with --to N, or pass --force to move the alias anyway",
                production_line(state, alias_name),
            )
            logger.info(f"version {target} passed the check: {verdict.method}")
        commit = recorded(str(configuration.get("Description", "")))
        if commit:
            logger.info(f"version {target} was built from {commit.describe()}")
        lock.verify()  # raises if the lock was taken over or broken during the check (the alias write checks again)
        moved = point_alias(aws.lambda_, name, alias_name, target, history, state)
        return report_rollback(paths, alias_name, state.version, moved, not force)


def report_rollback(
    paths: BuildPaths, alias_name: str, from_version: str, to: AliasState, verified: bool
) -> dict[str, Any]:
    report = {
        "alias": alias_name,
        "from_version": from_version,
        "to_version": to.version,
        "history": to.history,
        "verified": verified,
    }
    write_report(paths, "rollback", True, report)
    return report
