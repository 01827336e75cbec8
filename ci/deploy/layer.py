"""The layer version: reused when Lambda already holds exactly these bytes, else published from S3."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ci.config import Config
from ci.deploy.artifacts import Artifact
from ci.paths import BuildPaths


@dataclass(frozen=True)
class LayerVersion:
    arn: str
    version: int
    code_sha256: str
    published: bool


def newest_version(lambda_: Any, layer_name: str) -> dict[str, Any] | None:
    """The newest version of the layer (list_layer_versions is newest first), or None."""
    versions = lambda_.list_layer_versions(LayerName=layer_name).get("LayerVersions", [])
    if not versions:
        return None
    newest: dict[str, Any] = max(versions, key=lambda version: int(version["Version"]))
    return newest


def sklearn_version(config: Config, paths: BuildPaths) -> str:
    """scikit-learn's version inside the layer: from the build report, else from the layer lock."""
    import json

    build_report = paths.report("build")
    if build_report.is_file():
        distributions = json.loads(build_report.read_text()).get("distributions", {})
        for name in ("scikit-learn", "scikit_learn"):
            if name in distributions:
                return str(distributions[name].get("version"))
    from ci.lock.lockfile import read_lock

    lock = config.lock.layer_lock
    pin = read_lock(lock).get("scikit-learn") if lock.is_file() else None
    return (pin.version if pin else None) or "unknown"


def ensure_layer(lambda_: Any, config: Config, artifact: Artifact, bucket: str, key: str, sklearn: str) -> LayerVersion:
    """Reuse the newest layer version if its CodeSha256 is ours; otherwise publish one from S3."""
    name = config.function.layer_name
    newest = newest_version(lambda_, name)
    if newest is not None:
        detail = lambda_.get_layer_version(LayerName=name, VersionNumber=int(newest["Version"]))
        if detail["Content"]["CodeSha256"] == artifact.code_sha256:
            return LayerVersion(detail["LayerVersionArn"], int(detail["Version"]), artifact.code_sha256, False)
    published = lambda_.publish_layer_version(
        LayerName=name,
        Description=f"sha256 {artifact.sha256} scikit-learn {sklearn}"[:256],
        Content={"S3Bucket": bucket, "S3Key": key},
        CompatibleRuntimes=[config.target.runtime.name],
        CompatibleArchitectures=[config.target.architecture],
    )
    return LayerVersion(
        published["LayerVersionArn"], int(published["Version"]), published["Content"]["CodeSha256"], True
    )


def describe_layer_version(lambda_: Any, version_arn: str) -> dict[str, Any]:
    """get_layer_version for a layer version ARN (GetLayerVersionByArn is the same IAM action, but
    moto lacks it; the layer's own ARN is a valid LayerName)."""
    layer_arn, _, number = version_arn.rpartition(":")
    return dict(lambda_.get_layer_version(LayerName=layer_arn, VersionNumber=int(number)))
