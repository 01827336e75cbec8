"""The content address holds exactly the verified bytes: a swapped build file or a poisoned object cannot change that.

Both faults are real writes: build/function.zip is rewritten on disk while the deploy runs (from
the botocore hook of its first request, i.e. after the snapshot and before any upload), and the
poisoned object is a real PutObject to the moto server at the key the deploy is about to use.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from ci.config import Config
from ci.deploy.artifacts import hex_to_lambda_sha
from ci.deploy.aws import Aws
from ci.deploy.deployer import deploy
from ci.deploy.target import read_outputs
from ci.reports import sha256_file

pytest.register_assert_rewrite("tests.moto_fixtures")  # its fixtures are a plugin (below); rewrite before import
from tests.moto_fixtures import HANDLER, BytesCheck, FakeBuild, alias_version, write_zip  # noqa: E402

pytest_plugins = ["tests.moto_fixtures"]
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")


def object_sha256(aws: Aws, bucket: str, key: str) -> str:
    return hashlib.sha256(aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest()


def test_function_zip_swapped_during_the_deploy_never_reaches_s3_or_latest(aws: Aws, config: Config, build: FakeBuild):
    verified = sha256_file(build.paths.function_zip)
    swapped: list[str] = []

    def swap(**_: Any) -> None:  # the first request of the deploy: the snapshot is taken, nothing is uploaded yet
        if not swapped:
            write_zip(build.paths.function_zip, {"handler/__init__.py": "", "handler/app.py": HANDLER % "0.99"})
            swapped.append(sha256_file(build.paths.function_zip))

    aws.cloudformation.meta.events.register("before-call.cloudformation.DescribeStacks", swap)
    check = BytesCheck(build)

    outcome = deploy(config, build.paths, aws, verifier=check)

    assert swapped and swapped[0] != verified, "the build file was really swapped mid-deploy"
    function = outcome.uploads[1]
    assert function.key.endswith(f"/function/{verified}.zip")
    assert object_sha256(aws, function.bucket, function.key) == verified  # the verified bytes, not the swapped ones
    latest = aws.lambda_.get_function_configuration(FunctionName=config.function.name)
    assert latest["CodeSha256"] == hex_to_lambda_sha(verified)
    assert check.seen[outcome.version]["function.zip"] == verified
    assert alias_version(aws, config) == outcome.version


@pytest.mark.parametrize("poison", ["metadata claims our digest", "honest checksum of other bytes"])
def test_a_poisoned_object_at_the_content_address_is_replaced(
    ci_log: pytest.LogCaptureFixture, aws: Aws, config: Config, build: FakeBuild, poison: str
):
    """An object at the key that S3 does not vouch for (by its own SHA-256 checksum) is not trusted."""
    verified = sha256_file(build.paths.function_zip)
    stack = read_outputs(aws, config)
    if aws.s3.get_bucket_versioning(Bucket=stack.bucket).get("Status") != "Enabled":  # moto's CloudFormation skips it
        aws.s3.put_bucket_versioning(Bucket=stack.bucket, VersioningConfiguration={"Status": "Enabled"})
    key = f"{stack.key_prefix}/function/{verified}.zip"
    bad = b"not the verified function.zip"
    extra: dict[str, Any] = (
        {"Metadata": {"sha256": verified}} if poison.startswith("metadata") else {"ChecksumAlgorithm": "SHA256"}
    )
    aws.s3.put_object(Bucket=stack.bucket, Key=key, Body=bad, **extra)

    outcome = deploy(config, build.paths, aws, verifier=BytesCheck(build))

    assert outcome.status == "deployed" and outcome.uploads[1].uploaded
    assert object_sha256(aws, stack.bucket, key) == verified
    head = aws.s3.head_object(Bucket=stack.bucket, Key=key, ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == hex_to_lambda_sha(verified)
    replacing = [line for line in ci_log.messages if line.startswith(f"replacing s3://{stack.bucket}/{key}")]
    assert len(replacing) == 1, ci_log.messages
    assert "the bucket is versioned" in replacing[0]
    assert outcome.uploads[1].replaced
    versions = aws.s3.list_object_versions(Bucket=stack.bucket, Prefix=key).get("Versions", [])
    assert len(versions) == 2  # the poisoned object is kept as a noncurrent version, not deleted
    latest = aws.lambda_.get_function_configuration(FunctionName=config.function.name)
    assert latest["CodeSha256"] == hex_to_lambda_sha(verified)


def test_an_object_s3_vouches_for_is_not_uploaded_again(aws: Aws, config: Config, build: FakeBuild):
    deploy(config, build.paths, aws, verifier=BytesCheck(build))
    build.make(model="m2")
    puts: list[str] = []
    aws.s3.meta.events.register(
        "before-parameter-build.s3.PutObject", lambda params, **_: puts.append(str(params["Key"]))
    )

    outcome = deploy(config, build.paths, aws, verifier=BytesCheck(build))

    assert [u.uploaded for u in outcome.uploads] == [False, False, True]
    assert [key for key in puts if "/locks/" not in key] == [outcome.uploads[2].key]
