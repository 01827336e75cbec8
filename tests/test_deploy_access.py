"""AccessDenied names the action and the resource; no credentials at all gives a clear message.

moto enforces IAM when asked (POST /moto-api/reset-auth): the deploy runs as a user whose policy
allows S3 and reading the stack but no Lambda, exactly like a role missing a statement.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from ci.config import Config
from ci.deploy.aws import Aws, connect
from ci.deploy.deployer import DeployFailedError, deploy
from ci.errors import PipelineError

pytest.register_assert_rewrite("tests.moto_fixtures")  # its fixtures are a plugin (below); rewrite before import
from tests.moto_fixtures import BytesCheck, FakeBuild, moto_post  # noqa: E402

pytest_plugins = ["tests.moto_fixtures"]
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")

S3_AND_STACK_ONLY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:*", "cloudformation:DescribeStacks"], "Resource": "*"}],
}


def test_access_denied_names_the_action_and_the_resource(aws: Aws, moto: str, config: Config, build: FakeBuild):
    iam = aws.session.client("iam", endpoint_url=moto)
    iam.create_user(UserName="deployer")
    iam.put_user_policy(UserName="deployer", PolicyName="partial", PolicyDocument=json.dumps(S3_AND_STACK_ONLY))
    key = iam.create_access_key(UserName="deployer")["AccessKey"]
    restricted = connect(config, endpoint_url=moto, static_credentials=(key["AccessKeyId"], key["SecretAccessKey"]))
    moto_post(moto, "/moto-api/reset-auth", b"0")  # from now on moto evaluates IAM policies
    try:
        with pytest.raises(DeployFailedError) as denied:
            deploy(config, build.paths, restricted, verifier=BytesCheck(build))
    finally:
        moto_post(moto, "/moto-api/reset-auth", b"inf")

    message = str(denied.value)
    assert f"AWS denied lambda:GetAlias on function {config.function.name}:{config.function.alias}" in message
    assert "infra/template.yaml" in message
    assert "production is unchanged" in message


def test_denial_of_an_upload_names_the_s3_action_and_key(aws: Aws, config: Config, build: FakeBuild):
    from botocore.awsrequest import AWSResponse

    # moto enforces no bucket policies: answer PutObject with S3's real 403 body instead
    def deny(request: Any, **_: object) -> AWSResponse | None:
        if "/locks/" in request.url:
            return None  # the deploy lock may be written; the artifact may not
        body = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
        return AWSResponse("https://s3", 403, {}, type("Raw", (), {"stream": lambda self, **k: [body]})())

    aws.s3.meta.events.register("before-send.s3.PutObject", deny)
    with pytest.raises(DeployFailedError) as denied:
        deploy(config, build.paths, aws, verifier=BytesCheck(build))
    message = str(denied.value)
    assert "AWS denied s3:PutObject on arn:aws:s3:::" in message and "/artifacts/layer/" in message
    assert "step 'upload'" in message


def test_no_credentials_for_a_remote_endpoint_is_explained(config: Config, monkeypatch: pytest.MonkeyPatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(PipelineError) as missing:
        connect(config, endpoint_url="https://lambda.example.com")
    assert "no AWS credentials found for https://lambda.example.com" in str(missing.value)
    assert "AWS_PROFILE" in missing.value.fix
