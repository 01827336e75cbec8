"""End to end through the CLI with the real layer, model and smoke harness.

`make pipeline` ends with `python -m ci deploy` on a machine with no AWS: the local emulator is
started (its state replayed from build/local-aws), bootstrapped once, deployed to, checked with the
smoke harness on the bytes downloaded back, and stopped; rollback and status act on the same state.
Against one persistent endpoint, the second deploy of the same bytes does nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ci.config import Config
from ci.deploy.artifacts import hex_to_lambda_sha
from ci.deploy.aws import connect
from ci.deploy.deployer import deploy
from ci.paths import REPO_ROOT, BuildPaths
from ci.reports import CONTRACT_KEYS, sha256_file, write_report

pytest.register_assert_rewrite("tests.moto_fixtures")  # its fixtures are a plugin (below); rewrite before import
from tests.moto_fixtures import BytesCheck, CallLog, FakeBuild, judged  # noqa: E402

pytest_plugins = ["tests.moto_fixtures"]
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")]


def link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        target.write_bytes(source.read_bytes())


@pytest.fixture()
def verified_build(built_layer: BuildPaths, tmp_path: Path) -> BuildPaths:
    """The session's real layer, function and model, with the checks' reports passed on exactly them."""
    paths = BuildPaths(build=tmp_path / "build", cache=built_layer.cache)
    for name in ("layer_zip", "function_zip", "model"):
        link(getattr(built_layer, name), getattr(paths, name))
    if built_layer.report("build").is_file():
        link(built_layer.report("build"), paths.report("build"))
    fake = FakeBuild(paths)
    fake.pass_checks()
    write_report(paths, "budget", True, fake.budget_body(), judged=judged(paths, "budget"))
    return paths


def aws_free_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This process's environment without any AWS configuration (a fresh machine), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "GITHUB_ACTIONS"}
    env.update(HOME=str(tmp_path), AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_EC2_METADATA_DISABLED="true")
    env.update(extra)
    return env


def ci(paths: BuildPaths, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "ci", "--build-dir", str(paths.build), "--cache-dir", str(paths.cache), *args]
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False, timeout=900)


def changed_function(paths: BuildPaths) -> None:
    """A second build: function.zip with one more file, its build and check reports on the new bytes."""
    data = paths.function_zip.read_bytes()
    paths.function_zip.unlink()  # a link to the session's zip: never written in place
    paths.function_zip.write_bytes(data)
    with zipfile.ZipFile(paths.function_zip, "a") as archive:
        archive.writestr("handler/CHANGES.txt", "the second deploy's change\n")
    report = json.loads(paths.report("build").read_text())
    body = {key: value for key, value in report.items() if key not in CONTRACT_KEYS}
    write_report(paths, "build", True, body, judged=judged(paths, "build"))
    fake = FakeBuild(paths)
    fake.pass_checks()
    write_report(paths, "budget", True, fake.budget_body(), judged=judged(paths, "budget"))


def test_the_local_lifecycle_deploy_change_deploy_rollback_status_reset(verified_build: BuildPaths, tmp_path: Path):
    """With nothing configured, every command acts on one local emulator whose state lives in build/local-aws."""
    env = aws_free_env(tmp_path)
    first = ci(verified_build, env, "deploy")
    assert first.returncode == 0, first.stdout + first.stderr
    out = first.stdout
    assert "using the local AWS emulator at http://127.0.0.1:" in out
    assert out.count("s3://forgetting-curve-artifacts/artifacts/") >= 3
    assert "layer version arn:aws:lambda:us-east-1:123456789012:layer:forgetting-curve-runtime:1" in out
    assert "function version 1" in out and "alias live -> version 1" in out
    assert f"its state stays in {verified_build.build / 'local-aws'}" in out
    report = json.loads(verified_build.report("deploy").read_text())
    assert report["post_deploy_check"]["passed"] is True
    assert "smoke harness" in report["post_deploy_check"]["method"]

    changed_function(verified_build)
    second = ci(verified_build, env, "deploy")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "function version 2" in second.stdout and "alias live -> version 2" in second.stdout
    assert "bootstrapped stack" not in second.stdout, "the stack from the first command is still there"

    back = ci(verified_build, env, "rollback")
    assert back.returncode == 0, back.stdout + back.stderr
    assert "alias live -> version 1 (was 2)" in back.stdout

    status = ci(verified_build, env, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "stack forgetting-curve CREATE_COMPLETE" in status.stdout
    assert "alias live: -> version 1" in status.stdout
    listed = [line.split()[:3] for line in status.stdout.splitlines() if " version " in line and "alias" not in line]
    assert listed == [["*", "version", "1"], ["version", "2", "commit"]], status.stdout

    bootstrap = ci(verified_build, env, "bootstrap")  # an emulator needs no GitHub repository
    assert bootstrap.returncode == 0, bootstrap.stdout + bootstrap.stderr
    assert "deploy role     arn:aws:iam::123456789012:role/forgetting-curve-deploy" in bootstrap.stdout

    reset = ci(verified_build, env, "reset-local")
    assert reset.returncode == 0 and "local AWS emulator reset" in reset.stdout
    assert not (verified_build.build / "local-aws").exists()
    after = ci(verified_build, env, "status")
    assert "alias live: not created" in after.stdout, after.stdout


def test_second_deploy_to_the_same_endpoint_reports_nothing_to_deploy(
    verified_build: BuildPaths, tmp_path: Path, moto: str, config: Config
):
    env = aws_free_env(tmp_path, AWS_ENDPOINT_URL=moto)
    bootstrap = ci(verified_build, env, "bootstrap", "--github-repository", "example/forgetting-curve")
    assert bootstrap.returncode == 0, bootstrap.stdout + bootstrap.stderr
    assert "deploy role     arn:aws:iam::123456789012:role/forgetting-curve-deploy" in bootstrap.stdout

    # the first deploy in-process (the smoke harness already ran in the test above), the second as a user would
    aws = connect(config, endpoint_url=moto, static_credentials=("test", "test"))
    calls = CallLog(aws)
    puts: list[str] = []
    aws.s3.meta.events.register("before-parameter-build.s3.PutObject", lambda params, **_: puts.append(params["Key"]))
    first = deploy(config, verified_build, aws, verifier=BytesCheck(FakeBuild(verified_build)))
    assert first.version == "1"
    # the layer (tens of MB) went up in one PutObject carrying its SHA-256, so S3 itself checks the bytes
    assert calls.calls["s3:CreateMultipartUpload"] == 0 and calls.calls["s3:UploadPart"] == 0
    assert [key for key in puts if "/locks/" not in key] == [u.key for u in first.uploads]
    layer = first.uploads[0]
    head = aws.s3.head_object(Bucket=layer.bucket, Key=layer.key, ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == hex_to_lambda_sha(sha256_file(verified_build.layer_zip))

    second = ci(verified_build, env, "deploy")
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.startswith("already deployed")
    assert "uploaded:" not in second.stdout and "published" not in second.stdout
