"""The post-deploy check of the new version by number: invoked on AWS; on an emulator (no code runs) the
bytes Lambda and S3 hold are downloaded, checked against their digests and run through the smoke harness."""

import dataclasses
import json
import shutil
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ci.config import Config
from ci.deploy.artifacts import lambda_sha_to_hex
from ci.deploy.aws import Aws
from ci.errors import PipelineError
from ci.paths import BuildPaths
from ci.pins.check import require_safe_model
from ci.reports import sha256_file


@dataclass(frozen=True)
class Candidate:
    function_name: str
    version: str
    configuration: dict[str, Any]
    bucket: str
    key_prefix: str

    def variable(self, name: str) -> str:
        return str(self.configuration.get("Environment", {}).get("Variables", {}).get(name, ""))

    @property
    def model_sha256(self) -> str:
        return self.variable("MODEL_SHA256")


@dataclass
class Verdict:
    passed: bool
    method: str
    failures: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def require_pass(self, version: str, check: str, fix: str, production: str = "") -> None:
        if not self.passed:
            failures = "; ".join(self.failures[:5])
            after = f"\n  {production}" if production else ""
            raise PipelineError(f"version {version} failed {check} ({self.method}): {failures}{after}", fix)


Verifier = Callable[[Aws, Candidate], Verdict]


def default_verifier(config: Config, paths: BuildPaths) -> Verifier:
    """Invoke on AWS; the smoke harness on the downloaded bytes on a loopback emulator."""

    def verify(aws: Aws, candidate: Candidate) -> Verdict:
        if aws.emulated:
            return emulator_check(aws, config, paths, candidate)
        return invoke_check(aws, config, candidate, manifest=paths.model_manifest)

    return verify


def invoke_check(
    aws: Aws, config: Config, candidate: Candidate, events_dir: Path | None = None, manifest: Path | None = None
) -> Verdict:
    from ci.smoke.events import judge, load_events, read_answers

    events = load_events(events_dir or config.smoke.events)
    answers = read_answers(manifest, candidate.model_sha256) if manifest and answers_here(manifest, candidate) else None
    failures = []
    for event in events:
        response = aws.lambda_.invoke(
            FunctionName=candidate.function_name, Qualifier=candidate.version, Payload=json.dumps(event.event).encode()
        )
        payload = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            error = payload if isinstance(payload, dict) else {}
            kind, message = error.get("errorType", response["FunctionError"]), error.get("errorMessage", payload)
            failures.append(f"{event.name}: {kind}: {message}")
        elif problem := judge(event, payload, answers):
            failures.append(f"{event.name}: {problem}")
    method = f"invoked version {candidate.version}" + ("" if answers else NUMBERS_NOT_HERE)
    return Verdict(not failures, method, failures, {"events": len(events)})


NUMBERS_NOT_HERE = " (statuses and errors; no model.json here for its model, so its numbers were judged at its deploy)"


def answers_here(manifest: Path | None, candidate: Candidate) -> bool:
    """False for a rollback to a version of another model: its numbers were judged when it was deployed."""
    try:
        return manifest is not None and bool(json.loads(manifest.read_text()).get("sha256") == candidate.model_sha256)
    except (OSError, ValueError, AttributeError):  # no model.json, or not one
        return False


def emulator_check(
    aws: Aws, config: Config, paths: BuildPaths, candidate: Candidate, events_dir: Path | None = None
) -> Verdict:
    from ci.smoke.harness import run_smoke

    workdir = paths.build / "deploy-check" / f"version-{candidate.version}"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    function_zip = fetch_function_code(aws, candidate, workdir / "function.zip")
    layer_zip = fetch_layer(aws, candidate, workdir / "layer.zip")
    model = fetch_model(aws, candidate, workdir / "model" / "model.joblib")
    require_safe_model(model, config.lock.layer_lock)  # before any process of this check unpickles it
    check_paths = BuildPaths(build=workdir, cache=paths.cache)
    numbers = answers_here(paths.model_manifest, candidate)
    # Without the warm-latency series (measured before upload) unless [deploy].check_warm_invocations asks.
    warm = dataclasses.replace(config.smoke, warm_invocations=config.deploy.check_warm_invocations)
    checked = dataclasses.replace(config, smoke=warm)
    result = run_smoke(layer_zip, function_zip, model, checked, check_paths, events_dir, paths.model_manifest, numbers)
    return Verdict(
        bool(result.passed),
        f"smoke harness on version {candidate.version}'s bytes downloaded from the emulator (moto cannot invoke)"
        + ("" if numbers else NUMBERS_NOT_HERE),
        list(result.failures),
        {"downloaded": str(workdir)},
    )


def fetch_function_code(aws: Aws, candidate: Candidate, target: Path) -> Path:
    response = aws.lambda_.get_function(FunctionName=candidate.function_name, Qualifier=candidate.version)
    location = response.get("Code", {}).get("Location", "")
    return fetch(aws, location, candidate, "function", response["Configuration"]["CodeSha256"], target)


def fetch_layer(aws: Aws, candidate: Candidate, target: Path) -> Path:
    layers = candidate.configuration.get("Layers", [])
    if not layers:
        raise PipelineError(f"version {candidate.version} has no layer attached", "deploy again")
    layer = describe_layer_version(aws.lambda_, layers[0]["Arn"])
    return fetch(aws, layer["Content"].get("Location", ""), candidate, "layer", layer["Content"]["CodeSha256"], target)


def fetch_model(aws: Aws, candidate: Candidate, target: Path) -> Path:
    uri = candidate.variable("MODEL_S3_URI")
    parsed = urlparse(uri)
    if parsed.scheme != "s3":
        raise PipelineError(f"version {candidate.version} has MODEL_S3_URI={uri!r}", "deploy again")
    target.parent.mkdir(parents=True, exist_ok=True)
    aws.s3.download_file(parsed.netloc, parsed.path.lstrip("/"), str(target))
    if sha256_file(target) != candidate.model_sha256:
        raise PipelineError(
            f"{uri} does not match version {candidate.version}'s MODEL_SHA256 {candidate.model_sha256}",
            "the object was replaced; deploy again so the content-addressed key is rewritten",
        )
    return target


def fetch(aws: Aws, location: str, candidate: Candidate, kind: str, code_sha: str, target: Path) -> Path:
    """Download what Lambda holds (moto's locations are placeholders: then the S3 object) and prove its CodeSha256."""
    hex_digest = lambda_sha_to_hex(code_sha)
    if aws.endpoint_url and location.startswith(aws.endpoint_url.rstrip("/")):
        with urllib.request.urlopen(location, timeout=60) as response, target.open("wb") as out:
            shutil.copyfileobj(response, out)
    else:
        aws.s3.download_file(
            candidate.bucket, f"{candidate.key_prefix.strip('/')}/{kind}/{hex_digest}.zip", str(target)
        )
    if sha256_file(target) != hex_digest:
        raise PipelineError(
            f"the {kind} bytes downloaded for version {candidate.version} do not match Lambda's CodeSha256 {code_sha}",
            "the stored object differs from what Lambda holds; deploy again",
        )
    return target


def describe_layer_version(lambda_: Any, version_arn: str) -> dict[str, Any]:
    """GetLayerVersionByArn is the same IAM action, but moto lacks it; a layer's ARN is a valid LayerName."""
    layer_arn, _, number = version_arn.rpartition(":")
    return dict(lambda_.get_layer_version(LayerName=layer_arn, VersionNumber=int(number)))
