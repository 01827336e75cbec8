"""The function: created once, then code and configuration updated in place, then a version published.

Each step waits for Lambda (boto3's waiters) before the next, because Lambda rejects an update
while the previous one is in progress. The version is published guarded by the code SHA-256 and
the revision id we just observed, so a concurrent change can never be published by mistake.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ci.config import Config
from ci.deploy.artifacts import Artifacts
from ci.errors import PipelineError


@dataclass(frozen=True)
class Desired:
    """The $LATEST we want: what a published version must carry to be 'this deploy'."""

    name: str
    runtime: str
    handler: str
    architecture: str
    memory_mb: int
    timeout_s: int
    role_arn: str
    layers: list[str]
    environment: dict[str, str]
    code_sha256: str
    code_bucket: str
    code_key: str
    snapstart: bool = False

    @property
    def snapstart_apply_on(self) -> str:
        """Lambda's SnapStart.ApplyOn: snapshots are taken when a version is published, never for $LATEST."""
        return "PublishedVersions" if self.snapstart else "None"

    def configuration(self) -> dict[str, Any]:
        return {
            "Runtime": self.runtime,
            "Handler": self.handler,
            "MemorySize": self.memory_mb,
            "Timeout": self.timeout_s,
            "Role": self.role_arn,
            "Layers": self.layers,
            "Environment": {"Variables": self.environment},
            # Always sent, so turning [function] snapstart off turns it off on Lambda too.
            "SnapStart": {"ApplyOn": self.snapstart_apply_on},
        }


def desired_function(
    config: Config,
    artifacts: Artifacts,
    role_arn: str,
    layer_arn: str,
    extra_layers: list[str],
    model_uri: str,
    bucket: str,
    function_key: str,
) -> Desired:
    fn = config.function
    return Desired(
        name=fn.name,
        runtime=config.target.runtime.name,
        handler=fn.handler,
        architecture=config.target.architecture,
        memory_mb=fn.memory_mb,
        timeout_s=fn.timeout_s,
        role_arn=role_arn,
        layers=[layer_arn, *extra_layers],
        environment={"MODEL_S3_URI": model_uri, "MODEL_SHA256": artifacts.model.sha256},
        code_sha256=artifacts.function.code_sha256,
        code_bucket=bucket,
        code_key=function_key,
        snapstart=fn.snapstart,
    )


def matches(version_config: dict[str, Any], desired: Desired) -> bool:
    """Does a function version (or $LATEST) already run exactly what we want?"""
    env = version_config.get("Environment", {}).get("Variables", {})
    return (
        version_config.get("CodeSha256") == desired.code_sha256
        and [layer["Arn"] for layer in version_config.get("Layers", [])] == desired.layers
        and all(env.get(k) == v for k, v in desired.environment.items())
        and version_config.get("Runtime") == desired.runtime
        and version_config.get("Handler") == desired.handler
        and int(version_config.get("MemorySize", 0)) == desired.memory_mb
        and int(version_config.get("Timeout", 0)) == desired.timeout_s
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


def current_configuration(lambda_: Any, name: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        return dict(lambda_.get_function_configuration(FunctionName=name))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return None
        raise


def create_function(lambda_: Any, desired: Desired) -> dict[str, Any]:
    lambda_.create_function(
        FunctionName=desired.name,
        Code={"S3Bucket": desired.code_bucket, "S3Key": desired.code_key},
        Architectures=[desired.architecture],
        Publish=False,
        Description="forgetting-curve model; deployed by python -m ci deploy",
        **desired.configuration(),
    )
    lambda_.get_waiter("function_active_v2").wait(FunctionName=desired.name)
    return dict(lambda_.get_function_configuration(FunctionName=desired.name))


def update_code(lambda_: Any, desired: Desired, latest: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Update $LATEST's code (and architecture, which Lambda changes with the code) if it differs."""
    if latest.get("CodeSha256") == desired.code_sha256 and latest.get("Architectures") == [desired.architecture]:
        return latest, False
    lambda_.update_function_code(
        FunctionName=desired.name,
        S3Bucket=desired.code_bucket,
        S3Key=desired.code_key,
        Architectures=[desired.architecture],
        **revision(latest),
    )
    lambda_.get_waiter("function_updated_v2").wait(FunctionName=desired.name)
    return dict(lambda_.get_function_configuration(FunctionName=desired.name)), True


def revision(latest: dict[str, Any]) -> dict[str, str]:
    """RevisionId guard for the next write (emulators may not report one; AWS always does)."""
    return {"RevisionId": latest["RevisionId"]} if latest.get("RevisionId") else {}


def update_configuration(
    lambda_: Any, desired: Desired, latest: dict[str, Any], snapstart_modelled: bool = True
) -> tuple[dict[str, Any], bool]:
    """`snapstart_modelled`: False for an endpoint that ignores SnapStart (moto), where it never reads back."""
    snapstart_same = not snapstart_modelled or snapstart_problem(latest, desired) is None
    if matches(latest, desired) and latest.get("Role") == desired.role_arn and snapstart_same:
        return latest, False
    lambda_.update_function_configuration(FunctionName=desired.name, **revision(latest), **desired.configuration())
    lambda_.get_waiter("function_updated_v2").wait(FunctionName=desired.name)
    return dict(lambda_.get_function_configuration(FunctionName=desired.name)), True


def publish_version(lambda_: Any, desired: Desired, latest: dict[str, Any], description: str) -> dict[str, Any]:
    """Publish $LATEST as a version, only if it is still exactly what we configured."""
    if not matches(latest, desired):
        raise PipelineError(
            f"function {desired.name} $LATEST does not hold what was just deployed (code {latest.get('CodeSha256')}, "
            f"layers {[layer['Arn'] for layer in latest.get('Layers', [])]})",
            "something else changed the function concurrently; deploy again",
        )
    published = dict(
        lambda_.publish_version(
            FunctionName=desired.name,
            CodeSha256=desired.code_sha256,
            **revision(latest),
            Description=description[:256],
        )
    )
    if not matches(published, desired):
        raise PipelineError(
            f"Lambda published version {published.get('Version')} of {desired.name} without this deploy's "
            "code/configuration",
            "deploy again; if it repeats, compare get-function-configuration with build/reports/deploy.json",
        )
    return published
