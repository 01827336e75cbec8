"""Deploy against moto over HTTP: first deploy, no-op redeploy, model-only change, the gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ci.config import Config
from ci.deploy.artifacts import hex_to_lambda_sha
from ci.deploy.aws import Aws
from ci.deploy.deployer import deploy
from ci.deploy.target import read_outputs
from ci.deploy.verify import Candidate, invoke_check
from ci.errors import CheckFailedError
from ci.reports import write_report

pytest.register_assert_rewrite("tests.moto_fixtures")  # its fixtures are a plugin (below); rewrite before import
from tests.moto_fixtures import (  # noqa: E402
    WRITES,
    BytesCheck,
    CallLog,
    FakeBuild,
    alias_version,
    deploy_report,
    layer_versions,
)
from tests.smoke_fixtures import write_answers  # noqa: E402

pytest_plugins = ["tests.moto_fixtures"]
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")


def test_first_deploy_uploads_publishes_checks_then_points_the_alias(aws: Aws, config: Config, build: FakeBuild):
    check = BytesCheck(build)
    outcome = deploy(config, build.paths, aws, verifier=check)

    assert outcome.status == "deployed"
    assert [u.uploaded for u in outcome.uploads] == [True, True, True]
    digests = check.build_digests()
    prefix = config.deploy.key_prefix
    assert outcome.uploads[0].key == f"{prefix}/layer/{digests['layer.zip']}.zip"
    head = aws.s3.head_object(Bucket=outcome.uploads[2].bucket, Key=outcome.uploads[2].key, ChecksumMode="ENABLED")
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ChecksumSHA256"] == hex_to_lambda_sha(digests["model.joblib"])  # S3's own checksum, not metadata
    assert "sha256" not in head["Metadata"]

    layer = aws.lambda_.get_layer_version(
        LayerName=outcome.layer.arn.rpartition(":")[0], VersionNumber=outcome.layer.version
    )
    assert layer["CompatibleRuntimes"] == [config.target.runtime.name]
    assert layer["CompatibleArchitectures"] == [config.target.architecture]
    assert digests["layer.zip"] in layer["Description"] and "scikit-learn 1.3.2" in layer["Description"]

    version = aws.lambda_.get_function_configuration(FunctionName=config.function.name, Qualifier="1")
    assert version["MemorySize"] == config.function.memory_mb and version["Timeout"] == config.function.timeout_s
    assert version["Handler"] == config.function.handler and version["Runtime"] == config.target.runtime.name
    assert version["Environment"]["Variables"]["MODEL_SHA256"] == digests["model.joblib"]
    assert version["Environment"]["Variables"]["MODEL_S3_URI"] == outcome.uploads[2].uri
    assert [layer["Arn"] for layer in version["Layers"]] == [outcome.layer.arn]

    # the check ran on version 1's own bytes, before the alias existed
    assert check.seen == {"1": digests}
    assert alias_version(aws, config) == "1"
    report = deploy_report(build.paths)
    assert report["passed"] and report["function_version"] == "1" and report["layer"]["arn"] == outcome.layer.arn
    assert [u["uri"] for u in report["uploads"]] == [u.uri for u in outcome.uploads]
    assert set(report["timings"]) >= {"upload", "layer publish", "version publish", "post-deploy check", "alias"}


def test_second_deploy_of_the_same_artifacts_changes_nothing(aws: Aws, config: Config, build: FakeBuild):
    deploy(config, build.paths, aws, verifier=BytesCheck(build))
    calls = CallLog(aws)
    check = BytesCheck(build)

    outcome = deploy(config, build.paths, aws, verifier=check)

    assert outcome.status == "already deployed"
    assert calls.count(*WRITES) == 0, calls.calls
    assert check.seen == {}
    assert layer_versions(aws, config) == [1] and alias_version(aws, config) == "1"
    assert deploy_report(build.paths)["status"] == "already deployed"
    assert "already deployed" in outcome.summary()[0]


def test_model_only_change_publishes_a_function_version_on_the_same_layer(aws: Aws, config: Config, build: FakeBuild):
    first = deploy(config, build.paths, aws, verifier=BytesCheck(build))
    build.make(model="m2")
    calls = CallLog(aws)

    second = deploy(config, build.paths, aws, verifier=BytesCheck(build))

    assert second.version == "2" and alias_version(aws, config) == "2"
    assert second.layer.arn == first.layer.arn and not second.layer.published
    assert [u.uploaded for u in second.uploads] == [False, False, True]  # only the model
    assert calls.count("lambda:PublishLayerVersion", "lambda:UpdateFunctionCode") == 0
    assert calls.count("lambda:UpdateFunctionConfiguration", "lambda:PublishVersion") == 2
    assert layer_versions(aws, config) == [1]


@pytest.mark.parametrize(
    ("problem", "fix_words"),
    [("stale", "stale"), ("failed", "FAILED"), ("missing", "missing")],
)
def test_gate_refuses_unless_every_check_passed_on_these_bytes(
    aws: Aws, config: Config, build: FakeBuild, problem: str, fix_words: str
):
    if problem == "stale":
        build.paths.model.write_bytes(b"a model no check has seen")
    elif problem == "failed":
        write_report(build.paths, "pins", False, {})
    else:
        build.paths.report("abi").unlink()
    calls = CallLog(aws)

    with pytest.raises(CheckFailedError) as refused:
        deploy(config, build.paths, aws, verifier=BytesCheck(build))

    message = str(refused.value)
    assert fix_words in message and "nothing was uploaded" in message
    named = {"stale": "model.joblib", "failed": "pins", "missing": "abi"}[problem]
    assert named in message
    fix = refused.value.fix
    if problem == "failed":  # rerunning a failed check changes nothing: the fix says to fix what it reports
        assert "fix what `python -m ci pins` reports" in fix and "run the checks on this build" not in fix
    else:
        assert "run the checks on this build: " in fix
    assert sum(calls.calls.values()) == 0  # refused before the first request


def test_on_aws_the_check_invokes_the_new_version_number_with_every_event(
    aws: Aws, config: Config, build: FakeBuild, tmp_path: Path
):
    """moto without Docker echoes the payload: events shaped like their own answers show the plumbing."""
    first = deploy(config, build.paths, aws, verifier=BytesCheck(build))
    events = tmp_path / "events"
    events.mkdir()
    for name, sent in (("echo-right", 0.25), ("echo-wrong", 0.9)):
        (events / f"{name}.json").write_text(
            json.dumps(
                {
                    "description": name,
                    "event": {"predictions": [{"recall_probability": sent}]},
                    "expect": {"status": 200},
                }
            )
        )
    # training's answers for the deployed model (moto reports its MODEL_SHA256)
    manifest = write_answers(
        tmp_path / "model.json", build.paths.model, events, {"echo-right": 0.25, "echo-wrong": 0.1}
    )
    qualifiers: list[str] = []
    aws.lambda_.meta.events.register(
        "before-parameter-build.lambda.Invoke", lambda params, **_: qualifiers.append(params["Qualifier"])
    )
    stack = read_outputs(aws, config)
    version = aws.lambda_.get_function_configuration(FunctionName=config.function.name, Qualifier=first.version)
    candidate = Candidate(config.function.name, first.version, version, stack.bucket, stack.key_prefix)

    verdict = invoke_check(aws, config, candidate, events, manifest)

    assert qualifiers == ["1", "1"]  # the version number: never $LATEST, never the alias
    assert not verdict.passed
    assert len(verdict.failures) == 1
    assert verdict.failures[0].startswith(
        "echo-wrong: wrong answer: recall_probability[0] = 0.9, training computed 0.1 (unrounded 0.1, allowed ±5e-07"
    )
    # Without training's answers for that model (a rollback to another model), only statuses and errors count.
    assert invoke_check(aws, config, candidate, events, tmp_path / "absent.json").passed
