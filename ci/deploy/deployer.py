"""`python -m ci deploy`, as named steps: gate, lock, commit order, upload, layer, code, configuration, size,
version, check, alias.

Each step is skipped when its result already exists, so a rerun after any failure converges; the alias,
the only thing production sees, moves last, under the deploy lock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ci.config import Config
from ci.deploy import alias as aliases
from ci.deploy import function as functions
from ci.deploy.artifacts import Artifacts, local_artifacts
from ci.deploy.aws import Aws, unanswered
from ci.deploy.deadline import Deadlines
from ci.deploy.deploy_lock import TTL_S, acquire, lock_key
from ci.deploy.gate import check_gate
from ci.deploy.layer import LayerVersion, describe_layer_version, ensure_layer, sklearn_version
from ci.deploy.limits import check_attached_size
from ci.deploy.lock_holder import owner
from ci.deploy.provenance import Provenance, check_order, detect, recorded, version_description
from ci.deploy.shift import Shift, plan, read_alarms, resolve_split, shift
from ci.deploy.stack import StackOutputs, read_outputs
from ci.deploy.uploads import Upload, upload
from ci.deploy.verify import Candidate, Verdict, Verifier, default_verifier
from ci.errors import PipelineError
from ci.paths import BuildPaths
from ci.reports import write_report

logger = logging.getLogger(__name__)

RERUN_FIX = "fix the cause and rerun `python -m ci deploy`: finished steps are skipped, so it resumes where it stopped"


class DeployFailedError(PipelineError):
    """A step failed before the alias moved: production still runs what it ran before."""

    def __init__(self, step: str, problem: str, fix: str, production: str) -> None:
        super().__init__(f"deploy failed at step '{step}': {problem}\n  {production}", fix or RERUN_FIX)
        self.step = step
        self.production = production


@dataclass
class DeployOutcome:
    status: str  # deployed | already deployed
    endpoint: str
    uploads: list[Upload] = field(default_factory=list)
    layer: LayerVersion | None = None
    version: str = ""
    alias: str = ""
    previous_version: str | None = None
    verdict: Verdict | None = None
    timings: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    size: dict[str, Any] = field(default_factory=dict)
    provenance: Provenance | None = None
    snapstart: dict[str, str] = field(default_factory=dict)  # requested and reported SnapStart.ApplyOn
    shift: Shift | None = None  # a gradual deploy's steps ([deploy] strategy)

    def summary(self) -> list[str]:
        lines = [f"{self.status}: {self.endpoint}"]
        if self.provenance:
            lines.append(f"  {self.provenance.describe()} (from {self.provenance.source})")
        lines += [f"  {u.artifact:<13} {u.uri}{'' if u.uploaded else '  (already there)'}" for u in self.uploads]
        if self.layer:
            lines.append(f"  layer version {self.layer.arn}{'' if self.layer.published else '  (reused)'}")
        lines.append(f"  function version {self.version}")
        moved = f" (was {self.previous_version})" if self.previous_version not in (None, self.version) else ""
        lines.append(f"  alias {self.alias} -> version {self.version}{moved}")
        if self.shift and self.shift.steps:
            lines.append(f"  {self.shift.plan.strategy} shift {self.shift.outcome}:")
            lines += [f"    {s['at']}  {s['weight_percent']:>3}%  {shift_alarms(s)}" for s in self.shift.steps]
        return lines


def shift_alarms(step: dict[str, Any]) -> str:
    if "undo" in step:
        return f"undone: {step['undo']}"
    alarms = step.get("alarms", {})
    return f"{step.get('alarm_reads', 0)} alarm reads" + (f", last: {alarms}" if alarms else "")


class Steps:
    """Times each step, bounds its AWS calls, and remembers which one was running when something failed."""

    def __init__(self, deadlines: Deadlines | None = None) -> None:
        self.current = "start"
        self.timings: dict[str, float] = {}
        self.deadlines = deadlines
        self.on_step: Callable[[], None] | None = None  # verifies the deploy lock while it is held

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.current = name
        started = time.monotonic()
        with self.deadlines.step(name) if self.deadlines else nullcontext():
            if self.on_step is not None:
                self.on_step()
            yield
        self.timings[name] = round(time.monotonic() - started, 3)


def deploy(
    config: Config,
    paths: BuildPaths,
    aws: Aws,
    verifier: Verifier | None = None,
    artifacts: Artifacts | None = None,
    provenance: Provenance | None = None,
    allow_older: bool = False,
    lock_ttl_s: int = TTL_S,
    git_repo: Path | None = None,
) -> DeployOutcome:
    """Deploy the verified artifacts of `paths` to `aws`; raises DeployFailedError with production's state.

    `artifacts` are the snapshots the caller already gated (else they are taken here); `provenance`
    is the commit deployed (else --commit/GITHUB_SHA/HEAD of `git_repo`, default the repository).
    """
    artifacts = artifacts or local_artifacts(paths)
    check_gate(paths, artifacts, config.root)  # before any request: nothing unverified is ever uploaded
    repo = git_repo or config.root
    ours = provenance or detect(repo)
    verifier = verifier or default_verifier(config, paths)
    steps = Steps(aws.deadlines)
    name, alias_name = config.function.name, config.function.alias
    outcome = DeployOutcome(status="deployed", endpoint=aws.where, alias=alias_name, provenance=ours)
    before: aliases.AliasState | None = None
    alias_read = False
    try:
        with steps.step("read stack and alias"):
            stack = read_outputs(aws, config)
            before = aliases.read_alias(aws.lambda_, name, alias_name)
            alias_read = True
            outcome.previous_version = before.version if before else None
        live = already_live(aws, config, artifacts, stack, before)
        if live is not None:
            outcome.status, outcome.version, outcome.layer = "already deployed", before.version, live  # type: ignore[union-attr]
            outcome.uploads = [
                Upload(a.name, stack.bucket, a.key(stack.key_prefix), False, 0.0) for a in artifacts.all()
            ]
            outcome.skipped = ["upload", "layer publish", "code update", "configuration update", "version", "alias"]
            outcome.timings = steps.timings
            write_deploy_report(paths, outcome, stack, passed=True)
            return outcome
        with steps.step("lock"):
            key = lock_key(stack.key_prefix, name)
            lock = acquire(aws.s3, stack.bucket, key, owner("deploy", ours.commit), lock_ttl_s)
            logger.info(f"deploy lock {lock.uri} held until {lock.record['expires_at']} (S3 time)")
        try:
            steps.on_step = lock.verify
            with lock.guard(aws.s3, aws.lambda_, aws.cloudformation):  # every write proves the lock is ours
                with steps.step("commit order"):
                    before = resolve_split(aws, config)  # under the lock: the state we move from
                    outcome.previous_version = before.version if before else None
                    check_order(
                        repo, ours, live_provenance(aws, name, before), getattr(before, "version", ""), allow_older
                    )
                outcome = run_steps(config, paths, aws, verifier, steps, artifacts, stack, before, outcome)
        finally:
            steps.on_step = None
            lock.release()
    except PipelineError as exc:
        failed(paths, outcome, steps, exc.problem, exc.fix, before, alias_name, alias_read)
    except Exception as exc:  # botocore errors, injected faults: still say what production runs
        silent = unanswered(exc, aws.timeouts)
        if silent is not None:
            failed(paths, outcome, steps, silent.problem, silent.fix, before, alias_name, alias_read)
        failed(paths, outcome, steps, f"{exc.__class__.__name__}: {exc}", "", before, alias_name, alias_read)
    outcome.timings = steps.timings
    write_deploy_report(paths, outcome, stack, passed=True)
    return outcome


def live_provenance(aws: Aws, name: str, state: aliases.AliasState | None) -> Provenance | None:
    """The commit the live version records (None without an alias, or for a version deployed before this record)."""
    if state is None:
        return None
    live = aws.lambda_.get_function_configuration(FunctionName=name, Qualifier=state.version)
    return recorded(str(live.get("Description", "")))


def run_steps(
    config: Config,
    paths: BuildPaths,
    aws: Aws,
    verifier: Verifier,
    steps: Steps,
    artifacts: Artifacts,
    stack: StackOutputs,
    before: aliases.AliasState | None,
    outcome: DeployOutcome,
) -> DeployOutcome:
    name, alias_name = config.function.name, config.function.alias
    with steps.step("alarms"):  # a gradual deploy's missing alarm fails here, before anything is uploaded
        outcome.shift = Shift(plan(aws, config))
        read_alarms(aws, outcome.shift.plan.alarms)
    with steps.step("upload"):
        for artifact in artifacts.all():
            result = upload(aws.s3, stack.bucket, stack.key_prefix, artifact)
            outcome.uploads.append(result)
            logger.info(f"{'uploaded' if result.uploaded else 'already in S3'}: {result.uri}")
            if not result.uploaded:
                outcome.skipped.append(f"upload {artifact.name}")
    uris = {u.artifact: u for u in outcome.uploads}
    with steps.step("layer publish"):
        layer_upload = uris["layer.zip"]
        outcome.layer = layer = ensure_layer(
            aws.lambda_, config, artifacts.layer, stack.bucket, layer_upload.key, sklearn_version(config, paths)
        )
        if layer.code_sha256 != artifacts.layer.code_sha256:
            raise PipelineError(
                f"Lambda computed CodeSha256 {layer.code_sha256} for layer version {layer.version}, "
                f"not {artifacts.layer.code_sha256} of build/layer.zip",
                f"the S3 object {layer_upload.uri} is not our layer; delete it and deploy again",
            )
        logger.info(f"{'published' if layer.published else 'reused'} layer version {layer.arn}")
        if not layer.published:
            outcome.skipped.append("layer publish")
    desired = functions.desired_function(
        config,
        artifacts,
        stack.execution_role_arn,
        layer.arn,
        [entry.arn for entry in config.budget.extra_layer_arns],
        uris["model.joblib"].uri,
        stack.bucket,
        uris["function.zip"].key,
    )
    latest = functions.current_configuration(aws.lambda_, name)
    if latest is None:
        with steps.step("function create"):
            latest = functions.create_function(aws.lambda_, desired)
            logger.info(f"created function {name}")
    else:
        with steps.step("code update"):
            latest, changed = functions.update_code(aws.lambda_, desired, latest)
            logger.info("updated function code" if changed else "function code unchanged")
            if not changed:
                outcome.skipped.append("code update")
        with steps.step("configuration update"):
            latest, changed = functions.update_configuration(aws.lambda_, desired, latest, not aws.emulated)
            logger.info("updated function configuration" if changed else "function configuration unchanged")
            if not changed:
                outcome.skipped.append("configuration update")
    with steps.step("size check"):
        size = check_attached_size(config, paths, latest, layer.arn, artifacts.function.unzipped_bytes())
        outcome.size = {"used_bytes": size.used_bytes, "limit_bytes": size.limit_bytes, "parts": size.parts}
    with steps.step("version publish"):
        description = version_description(
            outcome.provenance or Provenance("unknown", None, "none"),
            artifacts.function.sha256,
            artifacts.layer.sha256,
            artifacts.model.sha256,
        )
        published = functions.publish_version(aws.lambda_, desired, latest, description)
        outcome.version = str(published["Version"])
        logger.info(f"function version {outcome.version}")
        check_snapstart(aws, desired, published, outcome)
    with steps.step("post-deploy check"):
        candidate = Candidate(name, outcome.version, published, stack.bucket, stack.key_prefix)
        verdict = verifier(aws, candidate)
        outcome.verdict = verdict
        if not verdict.passed:
            raise PipelineError(
                f"version {outcome.version} failed the post-deploy check ({verdict.method}): "
                + "; ".join(verdict.failures[:5]),
                "fix the cause (the version stays published but unused) and rerun `python -m ci deploy`",
            )
        logger.info(f"post-deploy check passed: {verdict.method}")
    with steps.step("alias"):
        if before is not None and before.version == outcome.version:
            outcome.skipped.append("alias")
        else:
            history = [*(before.history if before else []), outcome.version]
            if before is not None and outcome.shift is not None and outcome.shift.plan.gradual:
                renew = steps.on_step or (lambda: None)
                shift(aws, config, before, outcome.version, history, outcome.shift, renew)
            else:
                aliases.point_alias(aws.lambda_, name, alias_name, outcome.version, history, before)
        logger.info(f"alias {alias_name} -> version {outcome.version}")
    return outcome


def check_snapstart(aws: Aws, desired: functions.Desired, published: dict[str, Any], outcome: DeployOutcome) -> None:
    """The published version must carry the SnapStart setting asked for; an emulator (moto) does not model it."""
    reported = functions.snapstart_reported(published)
    outcome.snapstart = {"requested": desired.snapstart_apply_on, "reported": reported}
    problem = functions.snapstart_problem(published, desired)
    if problem is None:
        if desired.snapstart:
            logger.info(
                f"SnapStart on for version {published.get('Version')} (restore latency is measured only on Lambda)"
            )
        return
    if aws.emulated:
        outcome.snapstart["note"] = (
            "an emulator on the loopback interface (moto) does not model SnapStart: "
            "it reports ApplyOn=None whatever is sent"
        )
        logger.info(f"note: {problem}; {outcome.snapstart['note']}")
        return
    raise PipelineError(problem, "check that the runtime supports SnapStart (python3.12+) and deploy again")


def already_live(
    aws: Aws, config: Config, artifacts: Artifacts, stack: StackOutputs, before: aliases.AliasState | None
) -> LayerVersion | None:
    """The live layer version if the alias already runs exactly these artifacts and configuration."""
    if before is None or before.split:
        return None  # a split alias is resolved under the lock first
    live = aws.lambda_.get_function_configuration(FunctionName=config.function.name, Qualifier=before.version)
    layers = [layer["Arn"] for layer in live.get("Layers", [])]
    if not layers:
        return None
    layer = describe_layer_version(aws.lambda_, layers[0])
    if layer["Content"]["CodeSha256"] != artifacts.layer.code_sha256:
        return None
    model_uri = f"s3://{stack.bucket}/{artifacts.model.key(stack.key_prefix)}"
    desired = functions.desired_function(
        config,
        artifacts,
        stack.execution_role_arn,
        layers[0],
        [entry.arn for entry in config.budget.extra_layer_arns],
        model_uri,
        stack.bucket,
        artifacts.function.key(stack.key_prefix),
    )
    if not functions.matches(live, desired) or live.get("Role") != desired.role_arn:
        return None
    if not aws.emulated and functions.snapstart_problem(live, desired) is not None:
        return None  # [function] snapstart changed: publish a version that carries it
    return LayerVersion(layers[0], int(layer["Version"]), layer["Content"]["CodeSha256"], False)


def failed(
    paths: BuildPaths,
    outcome: DeployOutcome,
    steps: Steps,
    problem: str,
    fix: str,
    before: aliases.AliasState | None,
    alias_name: str,
    alias_read: bool = True,
) -> None:
    production = aliases.production_line(before, alias_name, alias_read)
    outcome.status = "failed"
    outcome.timings = steps.timings
    write_report(
        paths,
        "deploy",
        False,
        {"status": "failed", "failed_step": steps.current, "error": problem, "production": production, **body(outcome)},
    )
    raise DeployFailedError(steps.current, problem, fix, production)


def body(outcome: DeployOutcome) -> dict[str, Any]:
    return {
        "endpoint": outcome.endpoint,
        "uploads": [{**asdict(u), "uri": u.uri} for u in outcome.uploads],
        "layer": asdict(outcome.layer) if outcome.layer else None,
        "function_version": outcome.version,
        "alias": {"name": outcome.alias, "version": outcome.version, "previous_version": outcome.previous_version},
        "post_deploy_check": asdict(outcome.verdict) if outcome.verdict else None,
        "size": outcome.size,
        "timings": outcome.timings,
        "skipped": outcome.skipped,
        "provenance": asdict(outcome.provenance) if outcome.provenance else None,
        "snapstart": outcome.snapstart,
        "shift": shift_report(outcome.shift),
    }


def shift_report(shifting: Shift | None) -> dict[str, Any] | None:
    if shifting is None:
        return None
    return {**asdict(shifting.plan), "outcome": shifting.outcome, "steps": shifting.steps}


def write_deploy_report(paths: BuildPaths, outcome: DeployOutcome, stack: StackOutputs, passed: bool) -> None:
    write_report(
        paths,
        "deploy",
        passed,
        {"status": outcome.status, "stack": asdict(stack), **body(outcome)},
    )
