"""One deploy at a time, and the alias moves only from the state this run read.

The concurrent test is fault injection on the real thing: two deploys of different builds and
configurations run at once in two threads, each with its own boto3 clients, against the same moto
server over HTTP. Whichever takes the lock first holds its post-deploy check open until the other
has finished, so the two really overlap.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pytest

from ci.config import Config, load_config
from ci.deploy.aws import Aws, connect
from ci.deploy.deployer import DeployFailedError, DeployOutcome, deploy, rollback
from ci.deploy.verify import Candidate, Verdict
from ci.paths import BuildPaths

pytest.register_assert_rewrite("tests.moto_fixtures")  # its fixtures are a plugin (below); rewrite before import
from tests.moto_fixtures import WRITES, BytesCheck, CallLog, FakeBuild, alias_version, lock_location, read_lock  # noqa: E402

pytest_plugins = ["tests.moto_fixtures"]
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")

LAMBDA_WRITES = tuple(call for call in WRITES if call.startswith("lambda:"))


def plant_lock(aws: Aws, config: Config, ttl_s: int) -> dict[str, Any]:
    """A lock as another run on another machine wrote it; S3's clock expires it `ttl_s` after this write."""
    record = {
        "command": "deploy",
        "host": "runner-7",
        "pid": 4242,
        "user": "octocat",
        "commit": "f" * 40,
        "github_run_id": "987654",
        "github_run_url": "https://github.com/example/forgetting-curve/actions/runs/987654",
        "token": "planted",
        "ttl_s": ttl_s,
        "acquired_at": "2026-01-01T00:00:00Z",
    }
    bucket, key = lock_location(aws, config)
    aws.s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(record).encode())
    return record


def s3_expiry(aws: Aws, config: Config) -> str:
    """When S3's clock expires the lock object: its LastModified + ttl_s."""
    bucket, key = lock_location(aws, config)
    head = aws.s3.head_object(Bucket=bucket, Key=key)
    expires = head["LastModified"].astimezone(UTC) + timedelta(seconds=read_lock(aws, config)["ttl_s"])
    return expires.isoformat(timespec="seconds").replace("+00:00", "Z")


def alias_history(aws: Aws, config: Config) -> list[str]:
    description = aws.lambda_.get_alias(FunctionName=config.function.name, Name=config.function.alias)["Description"]
    return description.rpartition(": ")[2].split()


def test_two_concurrent_deploys_one_deploys_the_other_is_refused_naming_the_holder(aws: Aws, moto: str, tmp_path: Path):
    configs = {
        "a": load_config(overrides={"function": {"memory_mb": 512}}),
        "b": load_config(overrides={"function": {"memory_mb": 1024}}),
    }
    builds = {
        name: FakeBuild(BuildPaths(build=tmp_path / name / "build", cache=tmp_path / "cache")).make(
            function=value, model=f"model-{name}"
        )
        for name, value in (("a", "0.4"), ("b", "0.6"))
    }
    finished = {name: threading.Event() for name in builds}
    start = threading.Barrier(2)
    results: dict[str, DeployOutcome | BaseException] = {}

    def holding_check(name: str) -> Any:
        check = BytesCheck(builds[name])
        other = "b" if name == "a" else "a"

        def verify(clients: Aws, candidate: Candidate) -> Verdict:
            finished[other].wait(timeout=10)  # keep this deploy in flight until the other one has ended
            return check(clients, candidate)

        return verify

    def run(name: str) -> None:
        clients = connect(configs[name], endpoint_url=moto, static_credentials=("test", "test"))
        start.wait()
        try:
            results[name] = deploy(configs[name], builds[name].paths, clients, verifier=holding_check(name))
        except BaseException as exc:  # the test judges whatever happened
            results[name] = exc
        finally:
            finished[name].set()

    threads = [threading.Thread(target=run, args=(name,)) for name in builds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    won = [name for name, result in results.items() if isinstance(result, DeployOutcome)]
    lost = [name for name, result in results.items() if isinstance(result, DeployFailedError)]
    assert len(won) == 1 and len(lost) == 1, results
    refusal = str(results[lost[0]])
    first_line = refusal.splitlines()[0]
    assert first_line.startswith("deploy failed at step 'lock': another deploy holds the deploy lock s3://")
    assert "deploy by " in first_line and " pid " in first_line and " since " in first_line and " until " in first_line
    assert "fix: wait for it to finish and rerun" in refusal
    assert "production is unchanged (alias live does not exist yet)" in refusal

    winner = results[won[0]]
    assert isinstance(winner, DeployOutcome)
    config = configs[won[0]]
    assert alias_version(aws, config) == winner.version == "1"
    assert alias_history(aws, config) == ["1"]
    versions = aws.lambda_.list_versions_by_function(FunctionName=config.function.name)["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1"]  # the loser published nothing
    assert versions[1]["MemorySize"] == configs[won[0]].function.memory_mb
    assert read_lock(aws, config).get("released_at")

    # the refused one, rerun: deploys on top, and the history keeps both
    loser = lost[0]
    again = deploy(configs[loser], builds[loser].paths, aws, verifier=BytesCheck(builds[loser]))
    assert again.version == "2" and alias_history(aws, config) == ["1", "2"]


def test_a_live_lock_refuses_at_once_and_changes_nothing(aws: Aws, config: Config, build: FakeBuild):
    deploy(config, build.paths, aws, verifier=BytesCheck(build))
    build.make(model="m2")
    held = plant_lock(aws, config, ttl_s=600)
    calls = CallLog(aws)

    with pytest.raises(DeployFailedError) as refused:
        deploy(config, build.paths, aws, verifier=BytesCheck(build))

    message = str(refused.value)
    assert "step 'lock'" in message
    assert (
        "deploy by octocat@runner-7 pid 4242 (run https://github.com/example/forgetting-curve/actions/runs/987654)"
        in (message)
    )
    assert f"since {held['acquired_at']} " in message and f"until {s3_expiry(aws, config)}, S3 time" in message
    assert "production is unchanged (alias live -> version 1)" in message
    assert calls.count(*LAMBDA_WRITES) == 0 and calls.count("s3:PutObject") == 0  # the lock was read, not written
    assert read_lock(aws, config) == held and alias_version(aws, config) == "1"

    with pytest.raises(Exception, match="another deploy holds the deploy lock"):
        rollback(config, build.paths, aws, verifier=BytesCheck(build))  # rollback takes the same lock


def test_an_expired_lock_is_taken_over(ci_log: pytest.LogCaptureFixture, aws: Aws, config: Config, build: FakeBuild):
    plant_lock(aws, config, ttl_s=0)

    outcome = deploy(config, build.paths, aws, verifier=BytesCheck(build))

    assert outcome.status == "deployed" and alias_version(aws, config) == "1"
    took = [line for line in ci_log.messages if line.startswith("took over the deploy lock")]
    assert len(took) == 1 and "octocat@runner-7 pid 4242" in took[0] and "by S3's clock" in took[0]
    lock = read_lock(aws, config)
    assert lock["host"] != "runner-7" and lock["released_at"] and lock["command"] == "deploy"


def test_an_alias_moved_during_the_deploy_is_not_overwritten(aws: Aws, config: Config, build: FakeBuild):
    check = BytesCheck(build)
    deploy(config, build.paths, aws, verifier=check)
    build.make(model="m2")
    deploy(config, build.paths, aws, verifier=check)
    build.make(model="m3")
    name, alias = config.function.name, config.function.alias

    def rolled_back_meanwhile(clients: Aws, candidate: Candidate) -> Verdict:
        aws.lambda_.update_alias(FunctionName=name, Name=alias, FunctionVersion="1", Description="by hand")
        return check(clients, candidate)

    with pytest.raises(DeployFailedError) as lost:
        deploy(config, build.paths, aws, verifier=rolled_back_meanwhile)

    message = str(lost.value)
    assert "step 'alias'" in message
    assert "alias live changed while this run held it: it was version 2" in message and "now version 1" in message
    assert alias_version(aws, config) == "1"  # the concurrent move stands


def test_the_alias_is_moved_with_the_revision_id_read_and_a_precondition_failure_is_clear(
    aws: Aws, config: Config, build: FakeBuild
):
    """moto ignores RevisionId; AWS answers 412 PreconditionFailedException, injected here as AWS sends it."""
    from botocore.awsrequest import AWSResponse

    deploy(config, build.paths, aws, verifier=BytesCheck(build))
    revision = aws.lambda_.get_alias(FunctionName=config.function.name, Name=config.function.alias)["RevisionId"]
    sent: list[dict[str, Any]] = []
    aws.lambda_.meta.events.register(
        "before-parameter-build.lambda.UpdateAlias", lambda params, **_: sent.append(params)
    )

    def precondition_failed(request: Any, **_: Any) -> AWSResponse:
        body = json.dumps({"Type": "User", "message": "The Revision Id provided does not match the latest"}).encode()
        headers = {"x-amzn-ErrorType": "PreconditionFailedException", "Content-Type": "application/json"}
        return AWSResponse(request.url, 412, headers, type("Raw", (), {"stream": lambda self, **k: [body]})())

    aws.lambda_.meta.events.register("before-send.lambda.UpdateAlias", precondition_failed)
    build.make(model="m2")

    with pytest.raises(DeployFailedError) as lost:
        deploy(config, build.paths, aws, verifier=BytesCheck(build))

    assert sent and sent[0]["RevisionId"] == revision
    assert "step 'alias'" in str(lost.value) and "alias live changed while this run held it" in str(lost.value)
    assert alias_version(aws, config) == "1"
