"""A failure at each deploy step leaves the alias where it was, says so, and a rerun converges.

Faults are injected where AWS would fail: a botocore `before-call` hook raising for the
operation (as a dropped connection does), or the post-deploy check failing.
"""

from __future__ import annotations

from typing import Any

import pytest

from ci.config import Config, load_config
from ci.deploy.aws import Aws
from ci.deploy.deployer import DeployFailedError, deploy, rollback
from ci.errors import PipelineError
from ci.reports import write_report

pytest.register_assert_rewrite("tests.moto_fixtures")  # its fixtures are a plugin (below); rewrite before import
from tests.moto_fixtures import (  # noqa: E402
    BytesCheck,
    FakeBuild,
    alias_version,
    deploy_report,
    judged,
    layer_versions,
)

pytest_plugins = ["tests.moto_fixtures"]
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")

FAULTS = {
    "upload": ("s3", "PutObject"),
    "layer publish": ("lambda", "PublishLayerVersion"),
    "code update": ("lambda", "UpdateFunctionCode"),
    "configuration update": ("lambda", "UpdateFunctionConfiguration"),
    "version publish": ("lambda", "PublishVersion"),
    "post-deploy check": None,
}


def inject(aws: Aws, service: str, operation: str) -> Any:
    """Make the next `operation` fail the way a dropped connection does; returns the hook to remove it."""
    from botocore.exceptions import EndpointConnectionError

    client = aws.s3 if service == "s3" else aws.lambda_

    def fail(params: dict[str, Any], **_: Any) -> None:
        if "/locks/" in str(params.get("url_path", "")):
            return  # the deploy lock is not the step under test
        raise EndpointConnectionError(endpoint_url=f"{client.meta.endpoint_url} ({operation}, injected)")

    client.meta.events.register(f"before-call.{service}.{operation}", fail)
    return lambda: client.meta.events.unregister(f"before-call.{service}.{operation}", fail)


@pytest.mark.parametrize("step", list(FAULTS))
def test_a_failed_step_leaves_production_unchanged_and_a_rerun_converges(
    aws: Aws, config: Config, build: FakeBuild, step: str
):
    check = BytesCheck(build)
    deploy(config, build.paths, aws, verifier=check)
    build.make(layer="v2", function="0.7", model="m2")  # every step has work to do
    fault = FAULTS[step]
    remove = inject(aws, *fault) if fault else None
    check.fail_next = fault is None

    with pytest.raises(DeployFailedError) as failure:
        deploy(config, build.paths, aws, verifier=check)

    message = str(failure.value)
    assert f"deploy failed at step '{step}'" in message
    assert "production is unchanged (alias live -> version 1)" in message
    assert alias_version(aws, config) == "1"
    report = deploy_report(build.paths)
    assert report["passed"] is False and report["failed_step"] == step

    if remove:
        remove()
    converged = deploy(config, build.paths, aws, verifier=check)

    assert converged.status == "deployed" and alias_version(aws, config) == converged.version == "2"
    assert check.seen["2"] == check.build_digests()
    assert layer_versions(aws, config) == [1, 2]  # the new layer was published exactly once
    assert deploy(config, build.paths, aws, verifier=check).status == "already deployed"


def test_rollback_moves_the_alias_back_after_checking_the_old_version(aws: Aws, config: Config, build: FakeBuild):
    check = BytesCheck(build)
    deploy(config, build.paths, aws, verifier=check)
    first = check.build_digests()
    build.make(model="m2")
    deploy(config, build.paths, aws, verifier=check)
    build.make(model="m3")
    deploy(config, build.paths, aws, verifier=check)
    assert alias_version(aws, config) == "3"

    assert rollback(config, build.paths, aws, verifier=check)["to_version"] == "2"
    assert rollback(config, build.paths, aws, verifier=check)["to_version"] == "1"
    assert alias_version(aws, config) == "1"
    assert check.seen["1"] == first  # the check ran on version 1's bytes again

    with pytest.raises(PipelineError, match="no earlier version"):
        rollback(config, build.paths, aws, verifier=check)

    assert rollback(config, build.paths, aws, to="3", verifier=check)["to_version"] == "3"
    check.fail_next = True
    with pytest.raises(PipelineError) as refused:
        rollback(config, build.paths, aws, verifier=check)
    assert "production is unchanged (alias live -> version 3)" in str(refused.value)
    assert alias_version(aws, config) == "3"
    assert rollback(config, build.paths, aws, verifier=check)["to_version"] == "1"


def test_rollback_without_history_uses_version_order(aws: Aws, config: Config, build: FakeBuild):
    check = BytesCheck(build)
    deploy(config, build.paths, aws, verifier=check)
    build.make(model="m2")
    deploy(config, build.paths, aws, verifier=check)
    name, alias = config.function.name, config.function.alias
    aws.lambda_.update_alias(FunctionName=name, Name=alias, FunctionVersion="2", Description="set by hand")

    assert rollback(config, build.paths, aws, verifier=check)["to_version"] == "1"


@pytest.mark.parametrize("counted_bytes", [None, 262_144_000])
def test_attached_layers_are_checked_against_the_unzipped_limit_before_publishing(
    aws: Aws, build: FakeBuild, counted_bytes: int | None
):
    """An extra layer attached to the function must have been counted by the budget, and fit."""
    deploy(load_config(), build.paths, aws, verifier=BytesCheck(build))
    extra = aws.lambda_.publish_layer_version(
        LayerName="observability", Content={"ZipFile": build.paths.layer_zip.read_bytes()}
    )["LayerVersionArn"]
    config = load_config(overrides={"budget": {"extra_layer_arns": [{"arn": extra, "unzipped_bytes": 1}]}})
    body = build.budget_body()
    if counted_bytes is not None:
        body["components"].append({"name": "observability", "kind": "extra layer", "source": extra,
                                   "unzipped_bytes": counted_bytes})  # fmt: skip
    write_report(build.paths, "budget", True, body, judged=judged(build.paths, "budget"))
    name = config.function.name
    published = [v["Version"] for v in aws.lambda_.list_versions_by_function(FunctionName=name)["Versions"]]

    with pytest.raises(DeployFailedError) as refused:
        deploy(config, build.paths, aws, verifier=BytesCheck(build))

    message = str(refused.value)
    assert "step 'size check'" in message and "production is unchanged (alias live -> version 1)" in message
    if counted_bytes is None:
        assert f"layers the size budget never counted: {extra}" in message
    else:
        assert "over Lambda's 262,144,000-byte limit" in message
    assert [v["Version"] for v in aws.lambda_.list_versions_by_function(FunctionName=name)["Versions"]] == published
    assert published == ["$LATEST", "1"]  # nothing was published over the limit
