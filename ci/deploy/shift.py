"""Gradual deploys: traffic moves to the new version in steps while alarms are read, undone on ALARM; runs
under the deploy lock (docs/design.md says why not CodeDeploy), and a dead run's split is undone later."""

import logging
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ci.config import Config
from ci.deploy.aws import Aws, error_code, unless_aws_error
from ci.deploy.deploy_lock import now as utc_now
from ci.deploy.deploy_lock import stamp
from ci.deploy.target import StackOutputs
from ci.errors import PipelineError

logger = logging.getLogger(__name__)

POLL_S = 5.0  # alarms are read at least this often while a step waits
RENEW_S = 60.0  # the deploy lock is renewed at least this often during a shift (its TTL is far longer)
PREFIX = "live versions, oldest first (python -m ci deploy/rollback): "


@dataclass(frozen=True)
class AliasState:
    name: str
    version: str
    history: list[str]  # ends with `version`
    revision_id: str = ""
    description: str = ""
    routing: dict[str, float] = field(default_factory=dict)  # versions besides `version` and their weights

    @property
    def split(self) -> bool:
        """Part of the traffic goes to another version: a gradual deploy is (or was, if it died) shifting."""
        return bool(self.routing)


def read_alias(lambda_: Any, function_name: str, alias: str) -> AliasState | None:
    response = unless_aws_error(lambda: lambda_.get_alias(FunctionName=function_name, Name=alias), None)
    if response is None:
        return None
    version = str(response["FunctionVersion"])
    description = str(response.get("Description", ""))
    history = re.findall(r"\d+", description.removeprefix(PREFIX)) if description.startswith(PREFIX) else []
    if not history or history[-1] != version:
        history = [*history, version]
    weights = (response.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    routing = {str(v): float(w) for v, w in weights.items() if float(w) > 0}
    return AliasState(alias, version, history, str(response.get("RevisionId", "")), description, routing)


def published_versions(lambda_: Any, name: str) -> list[dict[str, Any]]:
    """The function's published versions, oldest first ($LATEST left out); none if there is no function."""
    pages = lambda_.get_paginator("list_versions_by_function").paginate(FunctionName=name)  # lazy: read below
    return unless_aws_error(
        lambda: [v for page in pages for v in page.get("Versions", []) if v["Version"] != "$LATEST"], []
    )


def describe(history: list[str]) -> str:
    """The newest versions that fit in Lambda's 256-character description."""
    kept = list(history)
    while len(PREFIX + " ".join(kept)) > 256:
        kept.pop(0)
    return PREFIX + " ".join(kept)


def point_alias(
    lambda_: Any,
    function_name: str,
    alias: str,
    version: str,
    history: list[str],
    current: AliasState | None,
    routing: dict[str, float] | None = None,
) -> AliasState:
    """Move the alias only if it is still as `current` says: a concurrent move fails this run, never overwritten."""
    from botocore.exceptions import ClientError

    now = read_alias(lambda_, function_name, alias)
    if now != current:  # RevisionId alone is not enough: an emulator may ignore it
        raise moved_concurrently(alias, current, now)
    moved = {"FunctionName": function_name, "Name": alias, "FunctionVersion": version, "Description": describe(history)}
    try:
        if current is None:
            lambda_.create_alias(**moved)
        else:
            guard = {"RevisionId": current.revision_id} if current.revision_id else {}
            weights = {"AdditionalVersionWeights": routing or {}}  # none: the version alone
            lambda_.update_alias(**moved, RoutingConfig=weights, **guard)
    except ClientError as exc:
        code = error_code(exc)
        if code not in {"PreconditionFailedException", "ResourceConflictException"}:
            raise
        raise moved_concurrently(alias, current, read_alias(lambda_, function_name, alias), f"AWS: {code}") from exc
    return AliasState(alias, version, history, routing=routing or {})


def moved_concurrently(
    alias: str, expected: AliasState | None, found: AliasState | None, why: str = ""
) -> PipelineError:
    def where(state: AliasState | None) -> str:
        return "absent" if state is None else f"version {state.version} (revision {state.revision_id or '?'})"

    return PipelineError(
        f"alias {alias} changed while this run held it{f' ({why})' if why else ''}: it was {where(expected)}, "
        f"it is now {where(found)}; it was not moved",
        "another deploy or rollback moved it (outside the deploy lock); check build/reports and rerun",
    )


def production_line(state: AliasState | None, alias: str) -> str:
    """What production runs after a failure."""
    if state is None:
        return f"production is unchanged (alias {alias} does not exist yet)"
    return f"production is unchanged (alias {alias} -> version {state.version})"


@dataclass
class Shift:
    """The plan, then what the report and the job summary show: one entry per step (and the undo, if any)."""

    strategy: str
    weights: tuple[int, ...]  # percent on the new version at each step before it takes everything
    interval_s: int
    alarms: tuple[str, ...]
    outcome: str = "not started"  # completed | rolled back | not started
    steps: list[dict[str, Any]] = field(default_factory=list)


def step_weights(strategy: str, step_percent: int) -> tuple[int, ...]:
    if strategy == "canary":
        return (step_percent,)
    if strategy == "linear":
        return tuple(range(step_percent, 100, step_percent))
    return ()


def plan(config: Config, stack: StackOutputs) -> Shift:
    deploy = config.deploy
    weights = step_weights(deploy.strategy, deploy.step_percent)
    ours = stack.alarms if weights else ()
    if weights and not ours:
        raise PipelineError(
            f"stack {config.deploy.stack_name} has no alarms for a {deploy.strategy} deploy to watch "
            "(it was bootstrapped before gradual deploys existed)",
            "rerun `python -m ci bootstrap` (it adds the errors, throttles and duration alarms), then deploy",
        )
    watched = tuple(dict.fromkeys((*ours, *deploy.alarms)))
    return Shift(deploy.strategy, weights, deploy.step_interval_s, watched)


def read_alarms(aws: Aws, names: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    """{name: (state, reason)}; an alarm that does not exist is a clear error, never silently unwatched."""
    found: dict[str, tuple[str, str]] = {}
    for start in range(0, len(names), 100):  # DescribeAlarms takes at most 100 names
        pages = aws.cloudwatch.get_paginator("describe_alarms").paginate(
            AlarmNames=list(names[start : start + 100]), AlarmTypes=["MetricAlarm", "CompositeAlarm"]
        )
        for page in pages:
            for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
                found[alarm["AlarmName"]] = (str(alarm.get("StateValue", "")), str(alarm.get("StateReason", "")))
    missing = [name for name in names if name not in found]
    if missing:
        raise PipelineError(
            f"alarm {', '.join(missing)} (named in pipeline.toml [deploy] alarms or the stack) does not exist "
            f"on {aws.where}; the shift did not start",
            "create it, fix its name in [deploy] alarms, or rerun `python -m ci bootstrap` for the stack's own",
        )
    return found


def firing(states: dict[str, tuple[str, str]]) -> tuple[str, str] | None:
    return next(((name, reason) for name, (state, reason) in states.items() if state == "ALARM"), None)


def route(aws: Aws, config: Config, state: AliasState, weights: dict[str, float]) -> AliasState:
    """Send `weights` of the alias's traffic to other versions (empty: all on its version), guarded by RevisionId."""
    name, alias = config.function.name, state.name
    point_alias(aws.lambda_, name, alias, state.version, state.history, state, weights)
    moved = read_alias(aws.lambda_, name, alias)  # the next move is guarded by its new RevisionId
    if moved is None:
        raise moved_concurrently(alias, state, None)
    return moved


@contextmanager
def terminated_as_exception() -> Iterator[None]:
    """SIGTERM (a cancelled GitHub job) raises, so the shift can undo itself before the process ends."""

    def stop(signum: int, _: Any) -> None:
        raise SystemExit(128 + signum)

    main = threading.current_thread() is threading.main_thread()  # only the main thread may install a handler
    previous = signal.signal(signal.SIGTERM, stop) if main else None
    try:
        yield
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)


def shift(
    aws: Aws,
    config: Config,
    before: AliasState,
    new_version: str,
    history: list[str],
    shifting: Shift,
    keep_lock: Callable[[], None],
    sleep: Callable[[float], None] = time.sleep,
) -> AliasState:
    """Move the alias from `before` to `new_version` step by step; on ALARM (or any failure) undo and raise."""
    old = before.version
    if (found := firing(read_alarms(aws, shifting.alarms))) is not None:
        raise PipelineError(
            f"alarm {found[0]} is in ALARM before the shift started ({found[1]}); no traffic moved to version "
            f"{new_version}",
            "fix what the alarm reports (or wait until it is OK) and rerun `python -m ci deploy`",
        )
    state = before
    weights = ", ".join(f"{w}%" for w in shifting.weights)
    watched = ", ".join(shifting.alarms) or "no alarms"
    logger.info(f"{shifting.strategy} deploy: version {new_version} gets {weights}, {shifting.interval_s}s each, "
        f"then 100%; watching {watched}")  # fmt: skip
    try:
        with terminated_as_exception():
            for weight in shifting.weights:
                with aws.deadlines.step(f"shift to {weight}%"):  # a shift outlasts one step's deadline
                    keep_lock()
                    state = route(aws, config, state, {new_version: weight / 100})
                entry: dict[str, Any] = {"at": stamp(utc_now()), "weight_percent": weight, "alarm_reads": 0}
                shifting.steps.append(entry)
                logger.info(f"  {entry['at']} {weight}% on version {new_version}, {100 - weight}% on version {old}")
                watch(aws, shifting, entry, new_version, old, keep_lock, sleep)
            with aws.deadlines.step("shift to 100%"):
                keep_lock()
                moved = point_alias(aws.lambda_, config.function.name, before.name, new_version, history, state)
    except BaseException as exc:
        if state.split:
            with aws.deadlines.step("shift undo"):
                restored = route(aws, config, state, {})
            shifting.outcome = "rolled back"
            shifting.steps.append({"at": stamp(utc_now()), "weight_percent": 0, "undo": f"{exc}".split("\n")[0]})
            logger.info(
                f"  {stamp(utc_now())} all traffic back on version {restored.version} (version {new_version}: 0%)"
            )
        raise
    shifting.outcome = "completed"
    shifting.steps.append({"at": stamp(utc_now()), "weight_percent": 100, "alarm_reads": 0})
    logger.info(f"  {stamp(utc_now())} 100% on version {new_version}")
    return moved


def watch(
    aws: Aws,
    shifting: Shift,
    entry: dict[str, Any],
    new_version: str,
    old: str,
    keep_lock: Callable[[], None],
    sleep: Callable[[float], None],
) -> None:
    """Wait the step's interval reading the alarms every POLL_S (at least once); raise on ALARM."""
    deadline = time.monotonic() + shifting.interval_s
    renewed = time.monotonic()
    while True:
        with aws.deadlines.step("shift: alarm read"):
            if time.monotonic() - renewed >= RENEW_S:
                keep_lock()  # a step may last longer than the lock's TTL
                renewed = time.monotonic()
            states = read_alarms(aws, shifting.alarms)
        entry["alarm_reads"] += 1
        entry["alarms"] = {name: state for name, (state, _) in states.items()}
        if (found := firing(states)) is not None:
            name, reason = found
            raise PipelineError(
                f"alarm {name} went to ALARM while version {new_version} had {entry['weight_percent']}% of the "
                f"traffic: {reason or 'no reason given'}; all traffic is back on version {old}",
                f"fix version {new_version} (see the alarm's metric, dimension ExecutedVersion={new_version}) and "
                "deploy again",
            )
        left = deadline - time.monotonic()
        if left <= 0:
            return
        logger.info(f"    waiting {left:.0f}s; alarms OK ({entry['alarm_reads']} reads)")
        sleep(min(POLL_S, left))


def resolve_split(aws: Aws, config: Config, log: Callable[[str], None] = logger.info) -> AliasState | None:
    """Under the deploy lock: a split alias here was left by a run that died; all traffic back on its version."""
    state = read_alias(aws.lambda_, config.function.name, config.function.alias)
    if state is None or not state.split:
        return state
    shares = ", ".join(f"version {v} at {w * 100:g}%" for v, w in state.routing.items())
    restored = route(aws, config, state, {})
    log(
        f"alias {state.name} was left mid-shift by a run that did not finish ({shares}); "
        f"all traffic is back on version {restored.version}"
    )
    return restored
