"""`python -m ci deploy` as named steps, each skipped when its result exists (a rerun converges); the alias moves
last, under the deploy lock. Uploads are proven by S3's SHA-256 checksum; versions are published guarded by CodeSha256
and RevisionId (never a concurrent change). `python -m ci rollback` moves the alias back, checked and locked alike."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ci.config import Config
from ci.deploy.artifacts import Artifact, Artifacts, check_gate, hex_to_lambda_sha, lambda_sha_to_hex, local_artifacts
from ci.deploy.aws import Aws, Deadlines, unanswered, unless_aws_error
from ci.deploy.deploy_lock import acquire, lock_key, owner
from ci.deploy.shift import (
    AliasState,
    Shift,
    plan,
    point_alias,
    production_line,
    published_versions,
    read_alarms,
    read_alias,
    resolve_split,
    shift,
)
from ci.deploy.target import StackOutputs, read_outputs
from ci.deploy.verify import Candidate, Verdict, Verifier, default_verifier, describe_layer_version
from ci.errors import CheckFailedError, PipelineError
from ci.paths import BuildPaths
from ci.reports import read_report, write_report

logger = logging.getLogger(__name__)

RERUN_FIX = "fix the cause and rerun `python -m ci deploy`: finished steps are skipped, so it resumes where it stopped"


class DeployFailedError(PipelineError):
    """A step failed before the alias moved: production still runs what it ran before."""

    def __init__(self, step: str, problem: str, fix: str, production: str) -> None:
        super().__init__(f"deploy failed at step '{step}': {problem}\n  {production}", fix or RERUN_FIX)
        self.step = step


@dataclass
class DeployOutcome:
    status: str  # deployed | already deployed | failed
    endpoint: str
    alias: str
    provenance: Provenance
    production: str  # what production runs if this deploy fails now
    uploads: list[Upload] = field(default_factory=list)
    layer: LayerVersion | None = None
    version: str = ""
    previous_version: str | None = None
    verdict: Verdict | None = None
    timings: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    size: dict[str, Any] = field(default_factory=dict)
    snapstart: dict[str, str] = field(default_factory=dict)  # requested and reported SnapStart.ApplyOn
    shift: Shift | None = None  # a gradual deploy's steps ([deploy] strategy)

    def moving_from(self, before: AliasState | None) -> None:
        self.previous_version = before.version if before else None
        self.production = production_line(before, self.alias)

    def summary(self) -> list[str]:
        lines = [f"{self.status}: {self.endpoint}", f"  {self.provenance.describe()} (from {self.provenance.source})"]
        lines += [f"  {u.artifact:<13} {u.uri}{'' if u.uploaded else '  (already there)'}" for u in self.uploads]
        if self.layer:
            lines.append(f"  layer version {self.layer.arn}{'' if self.layer.published else '  (reused)'}")
        lines.append(f"  function version {self.version}")
        moved = f" (was {self.previous_version})" if self.previous_version not in (None, self.version) else ""
        lines.append(f"  alias {self.alias} -> version {self.version}{moved}")
        if self.shift and self.shift.steps:
            lines.append(f"  {self.shift.strategy} shift {self.shift.outcome}:")
            for step in self.shift.steps:
                if "undo" in step:
                    watched = f"undone: {step['undo']}"
                else:
                    alarms = step.get("alarms", {})
                    watched = f"{step.get('alarm_reads', 0)} alarm reads" + (f", last: {alarms}" if alarms else "")
                lines.append(f"    {step['at']}  {step['weight_percent']:>3}%  {watched}")
        return lines

    def write_report(self, paths: BuildPaths, **head: Any) -> None:
        body = {
            "endpoint": self.endpoint,
            "uploads": [{**asdict(u), "uri": u.uri} for u in self.uploads],
            "layer": asdict(self.layer) if self.layer else None,
            "function_version": self.version,
            "alias": {"name": self.alias, "version": self.version, "previous_version": self.previous_version},
            "post_deploy_check": asdict(self.verdict) if self.verdict else None,
            "size": self.size,
            "timings": self.timings,
            "skipped": self.skipped,
            "provenance": asdict(self.provenance),
            "snapstart": self.snapstart,
            "shift": asdict(self.shift) if self.shift else None,
        }
        write_report(paths, "deploy", self.status != "failed", {"status": self.status, **head, **body})


@dataclass
class Steps:
    """Times each step, bounds its AWS calls, and remembers which one was running when something failed."""

    deadlines: Deadlines
    timings: dict[str, float]
    current: str = "start"
    on_step: Callable[[], None] = lambda: None  # verifies the deploy lock once it is held

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.current = name
        started = time.monotonic()
        with self.deadlines.step(name):
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
    git_repo: Path | None = None,
) -> DeployOutcome:
    """Deploy `artifacts` (snapshots, else taken here); DeployFailedError names what production runs after a failure."""
    artifacts = artifacts or local_artifacts(paths)
    check_gate(paths, artifacts, config.root)  # before any request: nothing unverified is ever uploaded
    repo = git_repo or config.root
    name, alias_name = config.function.name, config.function.alias
    ours = provenance or detect(repo)
    unread = f"production is unchanged by this run (alias {alias_name} was not read, so its version is not known here)"
    outcome = DeployOutcome("deployed", aws.where, alias_name, ours, unread)
    steps = Steps(aws.deadlines, outcome.timings)
    verifier = verifier or default_verifier(config, paths)
    try:
        with steps.step("read stack and alias"):
            stack = read_outputs(aws, config)
            before = read_alias(aws.lambda_, name, alias_name)
            outcome.moving_from(before)
        live = already_live(aws, config, artifacts, stack, before)
        if live is not None and before is not None:
            outcome.status, outcome.version, outcome.layer = "already deployed", before.version, live
            outcome.uploads = [Upload(a.name, stack.bucket, a.key(stack.key_prefix), False, 0.0) for a in artifacts]
            outcome.skipped = ["upload", "layer publish", "code update", "configuration update", "version", "alias"]
            outcome.write_report(paths, stack=asdict(stack))
            return outcome
        with steps.step("lock"):
            lock = acquire(aws.s3, stack.bucket, lock_key(stack.key_prefix, name), owner("deploy", ours.commit))
            logger.info(f"deploy lock {lock.uri} held until {lock.record['expires_at']} (S3 time)")
        with lock.held(aws.s3, aws.lambda_, aws.cloudformation):  # every write proves the lock is ours
            steps.on_step = lock.verify
            with steps.step("commit order"):
                before = resolve_split(aws, config)  # under the lock: the state we move from
                outcome.moving_from(before)
                if before is not None:
                    live = aws.lambda_.get_function_configuration(FunctionName=name, Qualifier=before.version)
                    check_order(repo, ours, recorded(str(live.get("Description", ""))), before.version, allow_older)
            with steps.step("alarms"):  # a gradual deploy's missing alarm fails here, before anything is uploaded
                outcome.shift = shifting = plan(config, stack)
                read_alarms(aws, shifting.alarms)
            with steps.step("upload"):
                for artifact in artifacts:
                    result = upload(aws.s3, stack.bucket, stack.key_prefix, artifact)
                    outcome.uploads.append(result)
                    logger.info(f"{'uploaded' if result.uploaded else 'already in S3'}: {result.uri}")
                    if not result.uploaded:
                        outcome.skipped.append(f"upload {artifact.name}")
            with steps.step("layer publish"):
                outcome.layer = layer = ensure_layer(aws.lambda_, config, paths, artifacts.layer, stack)
                logger.info(f"{'published' if layer.published else 'reused'} layer version {layer.arn}")
                if not layer.published:
                    outcome.skipped.append("layer publish")
            desired = desired_function(config, artifacts, stack, layer.arn)
            latest = unless_aws_error(lambda: dict(aws.lambda_.get_function_configuration(FunctionName=name)), None)
            if latest is None:
                with steps.step("function create"):
                    latest = create_function(aws.lambda_, desired)
                    logger.info(f"created function {name}")
            else:
                for step in ("code", "configuration"):
                    with steps.step(f"{step} update"):
                        latest, changed = update_function(aws, desired, latest, step)
                        logger.info(f"updated function {step}" if changed else f"function {step} unchanged")
                        if not changed:
                            outcome.skipped.append(f"{step} update")
            with steps.step("size check"):
                outcome.size = check_attached_size(config, paths, latest, layer.arn, artifacts.function)
            with steps.step("version publish"):
                published = publish_version(aws.lambda_, desired, latest, ours, artifacts)
                outcome.version = str(published["Version"])
                logger.info(f"function version {outcome.version}")
                check_snapstart(aws, desired, published, outcome)
            with steps.step("post-deploy check"):
                candidate = Candidate(name, outcome.version, published, stack.bucket, stack.key_prefix)
                outcome.verdict = verdict = verifier(aws, candidate)
                verdict.require_pass(
                    outcome.version,
                    "the post-deploy check",
                    "fix the cause (the version stays published but unused) and rerun `python -m ci deploy`",
                )
                logger.info(f"post-deploy check passed: {verdict.method}")
            with steps.step("alias"):
                if before is not None and before.version == outcome.version:
                    outcome.skipped.append("alias")
                else:
                    history = [*(before.history if before else []), outcome.version]
                    if before is not None and shifting.weights:
                        shift(aws, config, before, outcome.version, history, shifting, lock.verify)
                    else:
                        point_alias(aws.lambda_, name, alias_name, outcome.version, history, before)
                logger.info(f"alias {alias_name} -> version {outcome.version}")
        outcome.write_report(paths, stack=asdict(stack))
    except Exception as exc:  # botocore errors, injected faults: still say what production runs
        error = exc if isinstance(exc, PipelineError) else unanswered(exc, aws.timeouts)
        problem, fix = (error.problem, error.fix) if error else (f"{exc.__class__.__name__}: {exc}", "")
        outcome.status = "failed"
        outcome.write_report(paths, failed_step=steps.current, error=problem, production=outcome.production)
        raise DeployFailedError(steps.current, problem, fix, outcome.production) from exc
    return outcome


def already_live(
    aws: Aws, config: Config, artifacts: Artifacts, stack: StackOutputs, before: AliasState | None
) -> LayerVersion | None:
    """The live layer version if the alias already runs exactly these artifacts and configuration."""
    if before is None or before.split:
        return None  # a split alias is resolved under the lock first
    live = aws.lambda_.get_function_configuration(FunctionName=config.function.name, Qualifier=before.version)
    layers = [layer["Arn"] for layer in live.get("Layers", [])]
    if not layers:
        return None
    layer = describe_layer_version(aws.lambda_, layers[0])
    desired = desired_function(config, artifacts, stack, layers[0])
    if layer["Content"]["CodeSha256"] != artifacts.layer.code_sha256 or not configured(aws, live, desired):
        return None  # e.g. [function] snapstart changed: publish a version that carries it
    return LayerVersion(layers[0], int(layer["Version"]), artifacts.layer.code_sha256, False)


def check_snapstart(aws: Aws, desired: Desired, published: dict[str, Any], outcome: DeployOutcome) -> None:
    """The published version must carry the SnapStart setting asked for; an emulator (moto) does not model it."""
    outcome.snapstart = {"requested": desired.snapstart_apply_on, "reported": snapstart_reported(published)}
    problem = snapstart_problem(published, desired)
    if problem is not None and not aws.emulated:
        raise PipelineError(problem, "check that the runtime supports SnapStart (python3.12+) and deploy again")
    if problem is not None:
        outcome.snapstart["note"] = (
            "an emulator on the loopback interface (moto) does not model SnapStart: "
            "it reports ApplyOn=None whatever is sent"
        )
        logger.info(f"note: {problem}; {outcome.snapstart['note']}")
    elif desired.snapstart_apply_on != "None":
        logger.info(f"SnapStart on for version {published.get('Version')} (restore latency is measured only on Lambda)")


def check_attached_size(
    config: Config, paths: BuildPaths, latest: dict[str, Any], our_layer_arn: str, function: Artifact
) -> dict[str, Any]:
    """{used_bytes, limit_bytes, parts}: the unzipped sizes the budget recorded for what is really attached."""
    components = read_report(paths, "budget").get("components", [])
    by_kind = {c["kind"]: int(c["unzipped_bytes"]) for c in components if c.get("kind") in {"function", "layer"}}
    layers = {str(c["source"]): int(c["unzipped_bytes"]) for c in components if c.get("kind") == "extra layer"}
    if "layer" in by_kind:
        layers[our_layer_arn] = by_kind["layer"]
    parts = {"function code": by_kind["function"] if "function" in by_kind else function.unzipped_bytes()}
    attached = [layer["Arn"] for layer in latest.get("Layers", [])]
    parts.update({arn: layers[arn] for arn in attached if arn in layers})
    unknown = [arn for arn in attached if arn not in layers]
    limit = config.budget.limit_bytes
    if unknown:
        raise CheckFailedError(
            f"function {latest.get('FunctionName')} has layers the size budget never counted: {', '.join(unknown)}",
            "declare them in pipeline.toml [[budget.extra_layer_arns]] with their unzipped_bytes and rerun "
            "`python -m ci budget`; production is unchanged",
        )
    used = sum(parts.values())
    if used > limit:
        raise CheckFailedError(
            f"function code combined with the attached layers is {used:,} bytes unzipped, over Lambda's "
            f"{limit:,}-byte limit (" + ", ".join(f"{name}: {size:,}" for name, size in parts.items()) + ")",
            "shrink the layer (see build/reports/budget.json suggestions) or drop an extra layer",
        )
    return {"used_bytes": used, "limit_bytes": limit, "parts": parts}


MAX_SINGLE_PUT = 5 * 1024**3  # S3's PutObject limit
ENCRYPTION = "AES256"  # matches the bucket default of infra/template.yaml (SSE-S3)


@dataclass(frozen=True)
class Upload:
    artifact: str
    bucket: str
    key: str
    uploaded: bool
    seconds: float
    replaced: str = ""  # what was at the content address before, if it was not our bytes

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def stored_checksum(s3: Any, bucket: str, key: str) -> str | None:
    """S3's full-object SHA-256 checksum of the object (base64; "" if it has none), None if there is no object."""
    head = unless_aws_error(lambda: s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED"), None)
    if head is None:
        return None
    if head.get("ChecksumType", "FULL_OBJECT") != "FULL_OBJECT":
        return ""  # a composite (multipart) checksum is a digest of part digests, not of the file
    return str(head.get("ChecksumSHA256") or "")


def describe_checksum(checksum: str) -> str:
    if not checksum:
        return "no full-object SHA-256 checksum"
    try:
        return f"sha256 {lambda_sha_to_hex(checksum)}"
    except ValueError:
        return f"checksum {checksum}"  # e.g. a composite "<base64>-<parts>"


def upload(s3: Any, bucket: str, prefix: str, artifact: Artifact) -> Upload:
    """Put the snapshot's bytes at their content address unless S3 already vouches for exactly them."""
    key = artifact.key(prefix)
    uri = f"s3://{bucket}/{key}"
    started = time.monotonic()
    wanted = hex_to_lambda_sha(artifact.sha256)
    found = stored_checksum(s3, bucket, key)
    if found == wanted:
        return Upload(artifact.name, bucket, key, False, time.monotonic() - started)
    replaced = ""
    if found is not None:
        replaced = describe_checksum(found)
        logger.info(
            f"replacing {uri}: S3 reports {replaced}, not sha256 {artifact.sha256}; the object there is not "
            "these bytes (the bucket is versioned: it stays as a noncurrent version)"
        )
    if artifact.size > MAX_SINGLE_PUT:
        raise PipelineError(
            f"{artifact.name} is {artifact.size:,} bytes, over S3's 5 GB single-request limit",
            "a Lambda artifact cannot be that large; check what the build put into it",
        )
    body = artifact.path.read_bytes()  # read once and proven to be the bytes the digest names before they are sent
    if hashlib.sha256(body).hexdigest() != artifact.sha256:
        raise PipelineError(
            f"the snapshot {artifact.path} no longer holds sha256 {artifact.sha256}: it was modified after being taken",
            "find what writes into build/snapshots/ (snapshots are read-only), then rerun the checks and deploy",
        )
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        ChecksumAlgorithm="SHA256",
        ChecksumSHA256=wanted,
        ServerSideEncryption=ENCRYPTION,
    )
    stored = stored_checksum(s3, bucket, key)
    if stored != wanted:
        raise PipelineError(
            f"{uri} was written, but S3 then reported {describe_checksum(stored or '')}, not sha256 {artifact.sha256}",
            "another writer is replacing that key concurrently (or the endpoint does not keep checksums); find it, "
            "stop it and deploy again",
        )
    return Upload(artifact.name, bucket, key, True, time.monotonic() - started, replaced)


@dataclass(frozen=True)
class Desired:
    """The $LATEST we want: what a published version must carry to be 'this deploy'."""

    name: str
    architecture: str
    code_sha256: str
    code: dict[str, str]  # S3Bucket, S3Key
    configuration: dict[str, Any]  # as UpdateFunctionConfiguration takes it

    @property
    def snapstart_apply_on(self) -> str:
        return str(self.configuration["SnapStart"]["ApplyOn"])


def desired_function(config: Config, artifacts: Artifacts, stack: StackOutputs, layer_arn: str) -> Desired:
    fn = config.function
    model_uri = f"s3://{stack.bucket}/{artifacts.model.key(stack.key_prefix)}"
    configuration = {
        "Runtime": config.target.runtime.name,
        "Handler": fn.handler,
        "MemorySize": fn.memory_mb,
        "Timeout": fn.timeout_s,
        "Role": stack.execution_role_arn,
        "Layers": [layer_arn, *(entry.arn for entry in config.budget.extra_layer_arns)],
        "Environment": {"Variables": {"MODEL_S3_URI": model_uri, "MODEL_SHA256": artifacts.model.sha256}},
        # Always sent, so turning [function] snapstart off turns it off on Lambda too. Snapshots are taken when a
        # version is published, never for $LATEST.
        "SnapStart": {"ApplyOn": "PublishedVersions" if fn.snapstart else "None"},
    }
    code = {"S3Bucket": stack.bucket, "S3Key": artifacts.function.key(stack.key_prefix)}
    return Desired(fn.name, config.target.architecture, artifacts.function.code_sha256, code, configuration)


def matches(version_config: dict[str, Any], desired: Desired) -> bool:
    wanted = desired.configuration
    env = version_config.get("Environment", {}).get("Variables", {})
    return (
        version_config.get("CodeSha256") == desired.code_sha256
        and [layer["Arn"] for layer in version_config.get("Layers", [])] == wanted["Layers"]
        and all(env.get(k) == v for k, v in wanted["Environment"]["Variables"].items())
        and all(version_config.get(key) == wanted[key] for key in ("Runtime", "Handler", "MemorySize", "Timeout"))
        and version_config.get("Architectures", ["x86_64"]) == [desired.architecture]
    )


def snapstart_reported(version_config: dict[str, Any]) -> str:
    return str((version_config.get("SnapStart") or {}).get("ApplyOn", "None"))


def snapstart_problem(version_config: dict[str, Any], desired: Desired) -> str | None:
    """Why a version does not carry the SnapStart setting this deploy asked for (None if it does)."""
    reported = snapstart_reported(version_config)
    if reported == desired.snapstart_apply_on:
        return None
    return (
        f"version {version_config.get('Version')} reports SnapStart ApplyOn={reported}, "
        f"this deploy asked for ApplyOn={desired.snapstart_apply_on} ([function] snapstart)"
    )


def create_function(lambda_: Any, desired: Desired) -> dict[str, Any]:
    lambda_.create_function(
        FunctionName=desired.name,
        Code=desired.code,
        Architectures=[desired.architecture],
        Publish=False,
        Description="forgetting-curve model; deployed by python -m ci deploy",
        **desired.configuration,
    )
    return settled(lambda_, desired.name, "function_active_v2")


def settled(lambda_: Any, name: str, waiter: str) -> dict[str, Any]:
    """$LATEST once Lambda has applied the change (a write before that fails with ResourceConflictException)."""
    lambda_.get_waiter(waiter).wait(FunctionName=name)
    return dict(lambda_.get_function_configuration(FunctionName=name))


def update_function(aws: Aws, desired: Desired, latest: dict[str, Any], part: str) -> tuple[dict[str, Any], bool]:
    """Update $LATEST's code (and architecture, which Lambda changes with the code) or configuration if it differs."""
    if part == "code":
        if latest.get("CodeSha256") == desired.code_sha256 and latest.get("Architectures") == [desired.architecture]:
            return latest, False
        code = {**desired.code, "Architectures": [desired.architecture]}
        aws.lambda_.update_function_code(FunctionName=desired.name, **code, **revision(latest))
    elif configured(aws, latest, desired):
        return latest, False
    else:
        aws.lambda_.update_function_configuration(
            FunctionName=desired.name, **revision(latest), **desired.configuration
        )
    return settled(aws.lambda_, desired.name, "function_updated_v2"), True


def revision(latest: dict[str, Any]) -> dict[str, str]:
    """RevisionId guard for the next write (emulators may not report one; AWS always does)."""
    return {"RevisionId": latest["RevisionId"]} if latest.get("RevisionId") else {}


def configured(aws: Aws, version_config: dict[str, Any], desired: Desired) -> bool:
    """An emulator (moto) ignores SnapStart, so there it never reads back as sent."""
    snapstart_same = aws.emulated or snapstart_problem(version_config, desired) is None
    return (
        matches(version_config, desired)
        and version_config.get("Role") == desired.configuration["Role"]
        and snapstart_same
    )


def publish_version(
    lambda_: Any, desired: Desired, latest: dict[str, Any], ours: Provenance, artifacts: Artifacts
) -> dict[str, Any]:
    """Publish $LATEST only if it still is what we configured; its description: the commit, then digest prefixes."""
    if not matches(latest, desired):
        raise PipelineError(
            f"function {desired.name} $LATEST does not hold what was just deployed (code {latest.get('CodeSha256')}, "
            f"layers {[layer['Arn'] for layer in latest.get('Layers', [])]})",
            "something else changed the function concurrently; deploy again",
        )
    digests = " ".join(f"{a.kind} {a.sha256[:16]}" for a in (artifacts.function, artifacts.layer, artifacts.model))
    description = f"{ours.describe()} {digests}"[:256]
    published: dict[str, Any] = lambda_.publish_version(
        FunctionName=desired.name, CodeSha256=desired.code_sha256, **revision(latest), Description=description
    )
    if not matches(published, desired):
        raise PipelineError(
            f"Lambda published version {published.get('Version')} of {desired.name} without this deploy's "
            "code/configuration",
            "deploy again; if it repeats, compare get-function-configuration with build/reports/deploy.json",
        )
    return published


@dataclass(frozen=True)
class LayerVersion:
    arn: str
    version: int
    code_sha256: str
    published: bool


def sklearn_version(config: Config, paths: BuildPaths) -> str:
    """scikit-learn's version inside the layer: from the build report (the gate read it), else the layer lock."""
    from ci.lock.lockfile import read_lock

    distributions = read_report(paths, "build").get("distributions", {})
    for name in ("scikit-learn", "scikit_learn"):
        if name in distributions:
            return str(distributions[name].get("version"))
    lock = config.lock.layer_lock
    pin = read_lock(lock).get("scikit-learn") if lock.is_file() else None
    return (pin.version if pin else None) or "unknown"


def ensure_layer(
    lambda_: Any, config: Config, paths: BuildPaths, artifact: Artifact, stack: StackOutputs
) -> LayerVersion:
    """The newest layer version if its CodeSha256 is ours; otherwise one published from S3."""
    name = config.function.layer_name
    versions = lambda_.list_layer_versions(LayerName=name).get("LayerVersions", [])
    if versions:
        newest = max(versions, key=lambda version: int(version["Version"]))
        detail = lambda_.get_layer_version(LayerName=name, VersionNumber=int(newest["Version"]))
        if detail["Content"]["CodeSha256"] == artifact.code_sha256:
            return LayerVersion(detail["LayerVersionArn"], int(detail["Version"]), artifact.code_sha256, False)
    key = artifact.key(stack.key_prefix)
    published = lambda_.publish_layer_version(
        LayerName=name,
        Description=f"sha256 {artifact.sha256} scikit-learn {sklearn_version(config, paths)}"[:256],
        Content={"S3Bucket": stack.bucket, "S3Key": key},
        CompatibleRuntimes=[config.target.runtime.name],
        CompatibleArchitectures=[config.target.architecture],
    )
    if published["Content"]["CodeSha256"] != artifact.code_sha256:
        raise PipelineError(
            f"Lambda computed CodeSha256 {published['Content']['CodeSha256']} for layer version "
            f"{published['Version']}, not {artifact.code_sha256} of build/layer.zip",
            f"the S3 object s3://{stack.bucket}/{key} is not our layer; delete it and deploy again",
        )
    return LayerVersion(published["LayerVersionArn"], int(published["Version"]), artifact.code_sha256, True)


COMMIT = re.compile(r"\bcommit ([0-9a-f]{40})( dirty)?")
UNKNOWN = "unknown"
OVERRIDE = "--allow-older"


@dataclass(frozen=True)
class Provenance:
    commit: str  # 40 hex digits, or "unknown"
    dirty: bool | None  # None when the tree deployed from is not this checkout's HEAD
    source: str  # --commit | GITHUB_SHA | git HEAD | none

    def describe(self) -> str:
        return f"commit {self.commit}" + (" dirty" if self.dirty else "")


def git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False, timeout=60)


def resolve(repo: Path, ref: str) -> str | None:
    try:
        found = git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except (OSError, subprocess.SubprocessError):
        return None
    return found.stdout.strip() if found.returncode == 0 else None


def detect(repo: Path, commit: str | None = None, environ: Mapping[str, str] = os.environ) -> Provenance:
    """--commit, else GITHUB_SHA, else `git rev-parse HEAD`; dirty is known only when that is HEAD."""
    given, source = (commit, "--commit") if commit else (environ.get("GITHUB_SHA"), "GITHUB_SHA")
    head = resolve(repo, "HEAD")
    if not given:
        given, source = head, "git HEAD"
    if not given:
        return Provenance(UNKNOWN, None, "none")
    full = resolve(repo, given) or given.lower()
    if not re.fullmatch(r"[0-9a-f]{40}", full):
        raise PipelineError(
            f"{source} {given!r} is not a commit this clone has, nor a full 40-digit commit id",
            "pass --commit with a full commit id (or fetch that commit first)",
        )
    dirty = None
    if full == head:
        status = git(repo, "status", "--porcelain", "--untracked-files=no")
        dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return Provenance(full, dirty, source)


def recorded(description: str) -> Provenance | None:
    match = COMMIT.search(description)
    return Provenance(match.group(1), bool(match.group(2)), "version description") if match else None


def check_order(repo: Path, ours: Provenance, live: Provenance | None, live_version: str, allow_older: bool) -> None:
    """Refuse to replace the live version with one built from an older commit (or one we cannot place)."""
    if live is None or live.commit == ours.commit:
        return
    if UNKNOWN in (live.commit, ours.commit):
        problem = (
            f"the commit of this deploy ({ours.commit}) or of live version {live_version} ({live.commit}) is unknown"
        )
    elif missing := [commit for commit in (live.commit, ours.commit) if resolve(repo, commit) is None]:
        problem = (
            f"live version {live_version} is commit {live.commit[:12]}, this deploy is {ours.commit[:12]}, and "
            f"this clone does not have {missing[0]}, so which is newer cannot be told"
        )
    elif ancestor(repo, ours.commit, live.commit):
        problem = (
            f"commit {ours.commit[:12]} is older than commit {live.commit[:12]} of live version {live_version} "
            "(an ancestor of it): deploying it would move production backwards"
        )
    elif ancestor(repo, live.commit, ours.commit):
        return
    elif git(repo, "rev-parse", "--is-shallow-repository").stdout.strip() != "false":  # may be "not fetched"
        problem = (
            f"this clone is shallow, so whether commit {ours.commit[:12]} is newer than commit {live.commit[:12]} "
            f"of live version {live_version} cannot be told"
        )
    else:
        logger.info(
            f"note: commit {ours.commit[:12]} and live commit {live.commit[:12]} have diverged; deploying anyway"
        )
        return
    if allow_older:
        logger.info(f"{problem}; deploying anyway ({OVERRIDE})")
        return
    raise PipelineError(
        f"deploy refused: {problem}",
        f"deploy a newer commit; to go back on purpose use `python -m ci rollback` (or pass {OVERRIDE}); "
        "a shallow clone needs the live commit fetched (actions/checkout fetch-depth: 0)",
    )


def ancestor(repo: Path, older: str, newer: str) -> bool:
    return git(repo, "merge-base", "--is-ancestor", older, newer).returncode == 0


def choose_target(lambda_: Any, name: str, state: AliasState, to: str | None) -> tuple[str, list[str]]:
    """(version, new history): --to N, else the version live before the current one."""
    if to is not None:
        return to, [*state.history, to]
    if len(state.history) >= 2:
        return state.history[-2], state.history[:-1]
    numbers = (int(v["Version"]) for v in published_versions(lambda_, name))
    older = sorted(number for number in numbers if number < int(state.version))
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
    lock = acquire(aws.s3, stack.bucket, lock_key(stack.key_prefix, name), owner("rollback", ""))
    with lock.held(aws.s3, aws.lambda_, aws.cloudformation):
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
        if commit := recorded(str(configuration.get("Description", ""))):
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
