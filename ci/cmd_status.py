"""`python -m ci status`: what is deployed where: the alias, each published version, the stack."""

import argparse
import logging
from typing import Any

from ci import logs
from ci.config import Config
from ci.deploy.target import add_target_argument
from ci.paths import BuildPaths

logger = logging.getLogger(__name__)
HELP = "Show what is deployed: the alias, the published versions and their commits (AWS or the local emulator)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_argument(parser)


def run(args: argparse.Namespace, config: Config, paths: BuildPaths) -> int:
    from ci.deploy.aws import readable_aws_errors
    from ci.deploy.shift import published_versions, read_alias
    from ci.deploy.target import LOCAL_STATE, RECORDING, deployment_target, find_stack, wants_embedded
    from ci.units import as_mb

    name, alias = config.function.name, config.function.alias
    lines: list[str] = []
    hidden = logs.muted("ci.deploy.target")  # the emulator's start and stop lines are the deploy's news
    with readable_aws_errors("status"), hidden, deployment_target(config, paths, args.target) as aws:
        stack = find_stack(aws, config.deploy.stack_name)
        lines.append(f"{aws.where}: stack {config.deploy.stack_name} {stack['StackStatus'] if stack else 'missing'}")
        versions = published_versions(aws.lambda_, name)
        state = read_alias(aws.lambda_, name, alias) if versions else None
        if state is not None and state.split:
            state = _resolve_split(aws, config, state, lines)
        lines.append(f"alias {alias}: " + (f"-> version {state.version}" if state else "not created"))
        if state and len(state.history) > 1:
            lines.append(f"  history: {' -> '.join(state.history)}")
        for version in versions:
            marker = "*" if state and version["Version"] == state.version else " "
            lines.append(f" {marker} version {version['Version']:>3}  {version.get('Description', '')}")
        if not versions:
            lines.append(f"function {name}: no published version (`python -m ci deploy` publishes one)")
    if wants_embedded(args.target):
        state_dir = paths.build / LOCAL_STATE
        size = (state_dir / RECORDING).stat().st_size if (state_dir / RECORDING).is_file() else 0
        lines.append(f"local state: {state_dir} ({as_mb(size)}; `python -m ci reset-local` forgets it)")
    logs.result(logger, "\n".join(lines))
    return 0


def _resolve_split(aws: Any, config: Config, state: Any, lines: list[str]) -> Any:
    """A split alias with the deploy lock free was left by a dead run: resolve it; else a deploy is shifting."""
    from ci.deploy.deploy_lock import DeployLockedError, acquire, lock_key, owner
    from ci.deploy.shift import resolve_split
    from ci.deploy.target import read_outputs

    stack = read_outputs(aws, config)
    key = lock_key(stack.key_prefix, config.function.name)
    shares = ", ".join(f"version {v} at {w * 100:g}%" for v, w in state.routing.items())
    try:
        with acquire(aws.s3, stack.bucket, key, owner("status", ""), log=lines.append).held(aws.lambda_):
            return resolve_split(aws, config, lines.append)
    except DeployLockedError as exc:
        lines.append(f"alias {state.name} is mid-shift ({shares}): {exc.problem}")
        return state
