"""infra/template.yaml: lints clean, and its deploy role allows exactly what deploy and rollback call.

The operations are recorded from a real deploy, model change and rollback against moto, so the
policy cannot drift from the code in either direction.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ci.config import Config
from ci.deploy.aws import Aws
from ci.deploy.deployer import deploy, rollback
from ci.deploy.target import cfn_loader
from ci.paths import REPO_ROOT

pytest.register_assert_rewrite("tests.moto_fixtures")  # its fixtures are a plugin (below); rewrite before import
from tests.moto_fixtures import BytesCheck, CallLog, FakeBuild  # noqa: E402

pytest_plugins = ["tests.moto_fixtures"]
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")

TEMPLATE = REPO_ROOT / "infra" / "template.yaml"
# IAM action of each API operation whose name differs from its action.
ACTIONS = {
    "s3:HeadObject": "s3:GetObject",
    "s3:CreateMultipartUpload": "s3:PutObject",
    "s3:UploadPart": "s3:PutObject",
    "s3:CompleteMultipartUpload": "s3:PutObject",
    "lambda:Invoke": "lambda:InvokeFunction",
    "lambda:GetLayerVersionByArn": "lambda:GetLayerVersion",
}
# Allowed although a deploy against moto does not call them, each for a stated reason.
ALLOWED_UNCALLED = {
    "s3:ListBucket": "without it S3 answers HEAD of a missing key with 403 instead of 404",
    "s3:AbortMultipartUpload": "boto3 aborts a failed multipart upload",
    "lambda:InvokeFunction": "the post-deploy check invokes the new version on AWS (moto cannot run code)",
    "iam:PassRole": "Lambda checks it when a function is given its execution role (moto does not)",
}


def template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(), Loader=cfn_loader())  # noqa: S506  (a SafeLoader)


def deploy_statements() -> list[dict[str, Any]]:
    role = template()["Resources"]["DeployRole"]["Properties"]
    (policy,) = role["Policies"]
    return policy["PolicyDocument"]["Statement"]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_cfn_lint_passes() -> None:
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run([str(cfn_lint), str(TEMPLATE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_bucket_is_versioned_encrypted_private_and_tls_only() -> None:
    resources = template()["Resources"]
    bucket = resources["ArtifactBucket"]["Properties"]
    assert bucket["VersioningConfiguration"]["Status"] == "Enabled"
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    (statement,) = resources["ArtifactBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_deploy_role_trusts_one_subject_binding_the_production_environment_to_main() -> None:
    """Not the environment alone (any branch naming it matched), nor a bare branch (skips the reviewers)."""
    (statement,) = template()["Resources"]["DeployRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"] == {
        "StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": {
                "Sub": "repo:${GitHubRepository}:environment:${DeployEnvironment}:ref:refs/heads/${DeployBranch}"
            },
        }
    }
    parameters = template()["Parameters"]
    assert (parameters["DeployEnvironment"]["Default"], parameters["DeployBranch"]["Default"]) == ("production", "main")


def test_no_statement_allows_a_wildcard_action_or_resource_except_listing_layer_versions() -> None:
    for statement in deploy_statements():
        assert all("*" not in action for action in as_list(statement["Action"]))
        if statement["Resource"] == "*":
            assert as_list(statement["Action"]) == ["lambda:ListLayerVersions"]  # it has no resource-level permission


def test_deploy_role_allows_exactly_what_deploy_and_rollback_call(aws: Aws, config: Config, build: FakeBuild):
    calls = CallLog(aws)
    check = BytesCheck(build)
    deploy(config, build.paths, aws, verifier=check)
    build.make(layer="v2", function="0.6", model="m2")
    canary = dataclasses.replace(config.deploy, strategy="canary", step_interval_s=0)  # reads the alarms
    deploy(dataclasses.replace(config, deploy=canary), build.paths, aws, verifier=check)
    deploy(config, build.paths, aws, verifier=check)
    name, alias = config.function.name, config.function.alias
    aws.lambda_.update_alias(FunctionName=name, Name=alias, FunctionVersion="2", Description="")  # no history
    rollback(config, build.paths, aws, verifier=check)

    called = {ACTIONS.get(operation, operation) for operation in calls.calls}
    allowed = {action for statement in deploy_statements() for action in as_list(statement["Action"])}
    assert called - allowed == set(), "deploy calls actions the deploy role does not allow"
    assert allowed - called == set(ALLOWED_UNCALLED), "the deploy role allows actions deploy never uses"
