"""`python -m ci bootstrap` on a moto endpoint, and where deploy goes when nothing is configured."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci.cli import main
from ci.config import Config
from ci.deploy.aws import Aws, connect
from ci.deploy.deployer import DeployFailedError, deploy
from ci.deploy.target import wants_embedded
from ci.errors import PipelineError

pytest.register_assert_rewrite("tests.moto_fixtures")  # its fixtures are a plugin (below); rewrite before import
from tests.moto_fixtures import BytesCheck, FakeBuild  # noqa: E402

pytest_plugins = ["tests.moto_fixtures"]
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")


# One subject names the repository, the environment and the branch (README "Security").
SUBJECT = "repo:example/forgetting-curve:environment:production:ref:refs/heads/main"


@pytest.fixture()
def no_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """A machine with no AWS configuration at all."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    return monkeypatch


def test_bootstrap_creates_then_updates_the_stack(no_aws: pytest.MonkeyPatch, moto: str, config: Config, capsys):
    no_aws.setenv("AWS_ENDPOINT_URL", moto)
    assert main(["bootstrap", "--github-repository", "example/forgetting-curve"]) == 0
    assert main(["bootstrap", "--github-repository", "example/forgetting-curve"]) == 0

    out = capsys.readouterr().out
    assert "CREATE_COMPLETE" in out and f"bucket          {config.deploy.bucket}" in out
    aws = connect(config)
    assert aws.emulated and aws.endpoint_url == moto
    iam = aws.session.client("iam")
    assert iam.get_role(RoleName=f"{config.function.name}-execution")["Role"]["Arn"]
    deploy_role = iam.get_role(RoleName=f"{config.function.name}-deploy")["Role"]
    (trust,) = deploy_role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Condition"] == {
        "StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": SUBJECT,
        }
    }
    assert aws.s3.head_bucket(Bucket=config.deploy.bucket)


def test_bootstrap_needs_a_repository_only_for_real_aws(no_aws: pytest.MonkeyPatch, moto: str, capsys, tmp_path: Path):
    """An emulator has no GitHub: the local one and any loopback endpoint bootstrap without a repository."""
    local = ["--build-dir", str(tmp_path / "build"), "bootstrap"]
    assert main(local) == 0
    assert "CREATE_COMPLETE" in capsys.readouterr().out
    assert (tmp_path / "build" / "local-aws" / "requests.jsonl").is_file(), "the local state is kept"
    no_aws.setenv("AWS_ENDPOINT_URL", moto)
    assert main(["bootstrap"]) == 0
    assert f"on {moto}" in capsys.readouterr().out
    no_aws.delenv("AWS_ENDPOINT_URL")
    no_aws.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    no_aws.setenv("AWS_SECRET_ACCESS_KEY", "example")
    assert main(["bootstrap"]) == 1  # refused before any request to AWS
    assert "--github-repository OWNER/NAME" in capsys.readouterr().err


def test_deploy_without_the_stack_says_to_bootstrap(moto: str, config: Config, build: FakeBuild):
    aws = connect(config, endpoint_url=moto, static_credentials=("test", "test"))
    with pytest.raises(DeployFailedError) as missing:
        deploy(config, build.paths, aws, verifier=BytesCheck(build))
    assert "python -m ci bootstrap" in str(missing.value)


def test_nothing_configured_means_embedded_except_inside_github_actions(no_aws: pytest.MonkeyPatch):
    assert wants_embedded("auto") is True
    no_aws.setenv("GITHUB_ACTIONS", "true")
    with pytest.raises(PipelineError, match="refusing to fall back to the embedded emulator"):
        wants_embedded("auto")
    assert wants_embedded("embedded") is True
    no_aws.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    assert wants_embedded("auto") is False


def test_rollback_on_an_empty_local_emulator_says_there_is_nothing_deployed(
    no_aws: pytest.MonkeyPatch, capsys, tmp_path: Path
):
    assert main(["--build-dir", str(tmp_path / "build"), "rollback"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "fix: " in error and "Traceback" not in error


def test_aws_clients_use_standard_retries_and_the_configured_region(
    no_aws: pytest.MonkeyPatch, moto: str, config: Config
):
    aws: Aws = connect(config, endpoint_url=moto)
    assert aws.region == config.deploy.region
    assert aws.lambda_.meta.config.retries["mode"] == "standard"
    no_aws.setenv("AWS_REGION", "eu-west-1")
    assert connect(config, endpoint_url=moto).region == "eu-west-1"


def test_rollback_takes_target_like_deploy_and_status(no_aws: pytest.MonkeyPatch, capsys, tmp_path: Path):
    """In GitHub Actions only `--target embedded` reaches the local emulator; without it rollback refuses."""
    no_aws.setenv("GITHUB_ACTIONS", "true")
    rollback = ["--build-dir", str(tmp_path / "build"), "rollback"]
    assert main(rollback) == 1
    assert "refusing to fall back to the embedded emulator" in capsys.readouterr().err
    assert main([*rollback, "--target", "embedded"]) == 1
    error = capsys.readouterr().err
    assert "has no alias" in error and "nothing to roll back" in error and "Traceback" not in error
    assert (tmp_path / "build" / "local-aws").is_dir(), "it went to the local emulator"
