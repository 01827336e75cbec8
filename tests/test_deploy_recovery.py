"""A deploy that died holding the lock is recoverable without waiting; a lock's life is S3's to judge.

Fault injection on the real thing: `python -m ci deploy` runs as a subprocess against the moto
server over HTTP, through a relay that freezes it right after it has written the lock, and is
killed with SIGKILL there. Clock skew is injected into the runner's clock (deploy_lock.now), while
S3 (moto) keeps the true time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from ci.config import Config
from ci.deploy import deploy_lock
from ci.deploy.aws import Aws, connect
from ci.deploy.deployer import DeployFailedError, deploy, rollback
from ci.paths import REPO_ROOT

pytest.register_assert_rewrite("tests.moto_fixtures")  # its fixtures are a plugin (below); rewrite before import
from tests.endpoint_fixtures import Relay  # noqa: E402
from tests.moto_fixtures import WRITES, BytesCheck, FakeBuild, alias_version, lock_location, read_lock  # noqa: E402

pytest_plugins = ["tests.moto_fixtures"]
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")


def quiet(_: str) -> None:
    pass


def environment(endpoint: str) -> dict[str, str]:
    """The subprocess's environment: this one without any AWS or GitHub setting, pointed at `endpoint`."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GITHUB_", "CI_AWS", "CI_DEPLOY"))}
    return {**keep, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}


def ci(build: FakeBuild, *command: str) -> list[str]:
    paths = build.paths
    return [sys.executable, "-m", "ci", "--build-dir", str(paths.build), "--cache-dir", str(paths.cache), *command]


@pytest.fixture()
def killed_deploy(moto: str, aws: Aws, config: Config, build: FakeBuild) -> Iterator[int]:
    """The pid of a `python -m ci deploy` killed with SIGKILL while it held the deploy lock."""
    relay = Relay(moto, stall_after_lock=True)
    with relay.running() as url:
        process = subprocess.Popen(
            ci(build, "deploy", "--target", "aws"),
            cwd=REPO_ROOT,
            env={**environment(url), "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        output: list[str] = []
        try:
            assert process.stdout is not None
            for line in process.stdout:  # until it says it holds the lock (the relay then holds its next request)
                output.append(line)
                if line.startswith("deploy lock s3://") and "held until" in line:
                    break
            assert relay.stalled.wait(60), "".join(output)
            assert read_lock(aws, config)["pid"] == process.pid
            process.send_signal(signal.SIGKILL)
            assert process.wait(30) == -signal.SIGKILL
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    yield process.pid


def test_a_deploy_killed_holding_the_lock_on_this_host_is_taken_over_at_once(
    ci_log: pytest.LogCaptureFixture, killed_deploy: int, aws: Aws, config: Config, build: FakeBuild
):

    outcome = deploy(config, build.paths, aws, verifier=BytesCheck(build))

    assert outcome.status == "deployed" and alias_version(aws, config) == "1"
    took = [line for line in ci_log.messages if line.startswith("took over the deploy lock")]
    assert len(took) == 1, ci_log.messages
    assert f"pid {killed_deploy}" in took[0] and f"process {killed_deploy} on this host" in took[0]
    assert "is no longer running" in took[0]
    lock = read_lock(aws, config)
    assert lock["pid"] == os.getpid() and lock["released_at"]
    assert lock["took_over"]["holder"]["pid"] == killed_deploy  # S3 keeps who was taken over, and why


def test_a_deploy_killed_holding_the_lock_is_recovered_by_unlock(
    ci_log: pytest.LogCaptureFixture, killed_deploy: int, moto: str, aws: Aws, config: Config, build: FakeBuild
):
    done = subprocess.run(
        ci(build, "unlock", "--reason", "runner killed mid-deploy"),
        cwd=REPO_ROOT,
        env=environment(moto),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith("broke the deploy lock s3://") and "held by deploy by " in first
    assert f"pid {killed_deploy}" in first
    assert "broken by unlock by " in done.stdout and "runner killed mid-deploy" in done.stdout
    lock = read_lock(aws, config)  # the record in S3: who broke whose lock, when (S3 time) and why
    assert lock["holder"]["pid"] == killed_deploy and lock["reason"] == "runner killed mid-deploy"
    assert lock["broken_by"].startswith("unlock by ") and lock["broken_at"]
    report = json.loads(build.paths.report("unlock").read_text())
    assert report["passed"] and report["status"] == "broken" and f"pid {killed_deploy}" in report["holder"]

    outcome = deploy(config, build.paths, aws, verifier=BytesCheck(build))
    assert outcome.status == "deployed" and not [line for line in ci_log.messages if line.startswith("took over")]


def plant_lock(aws: Aws, config: Config, **fields: Any) -> dict[str, Any]:
    """A live lock (15 minutes by S3's clock) as a deploy on another runner wrote it."""
    record = {
        "command": "deploy",
        "host": "runner-7",
        "pid": 4242,
        "user": "octocat",
        "commit": "f" * 40,
        "token": "planted",
        "ttl_s": 900,
        "acquired_at": "2026-01-01T00:00:00Z",
        **fields,
    }
    bucket, key = lock_location(aws, config)
    aws.s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(record).encode())
    return record


def test_a_live_lock_of_another_runner_refuses_deploy_and_rollback_until_unlock(
    aws: Aws, moto: str, config: Config, build: FakeBuild, monkeypatch: pytest.MonkeyPatch, capsys: Any
):
    from ci.cli import main

    check = BytesCheck(build)
    deploy(config, build.paths, aws, verifier=check)
    build.make(model="m2")
    deploy(config, build.paths, aws, verifier=check)
    build.make(model="m3")
    plant_lock(aws, config)

    with pytest.raises(DeployFailedError) as refused:
        deploy(config, build.paths, aws, verifier=check)
    assert "another deploy holds the deploy lock" in str(refused.value)
    assert "`python -m ci unlock --reason TEXT` breaks the lock" in refused.value.fix
    with pytest.raises(Exception, match="another deploy holds the deploy lock"):
        rollback(config, build.paths, aws, force=True, verifier=check)  # --force skips the check only

    for name, value in environment(moto).items():
        monkeypatch.setenv(name, value)
    assert main(["--build-dir", str(build.paths.build), "unlock", "--reason", "runner-7 was deleted"]) == 0
    printed = capsys.readouterr().out
    assert "held by deploy by octocat@runner-7 pid 4242" in printed and "runner-7 was deleted" in printed

    assert rollback(config, build.paths, aws, verifier=check)["to_version"] == "1"
    assert alias_version(aws, config) == "1"
    assert main(["--build-dir", str(build.paths.build), "unlock", "--reason", "again"]) == 0
    assert "nothing to break" in capsys.readouterr().out  # released by the rollback: nothing to break


def test_a_recycled_pid_on_this_host_is_not_the_holder(
    ci_log: pytest.LogCaptureFixture, aws: Aws, config: Config, build: FakeBuild
):
    """The lock names this very process, but with another start time: the holder is gone, its pid reused."""
    from ci.deploy.deploy_lock import owner

    me = owner("deploy", "")
    plant_lock(aws, config, **{**me, "process": {**me["process"], "start_ticks": "1"}})

    deploy(config, build.paths, aws, verifier=BytesCheck(build))

    assert any("the pid now belongs to a newer process" in line for line in ci_log.messages), ci_log.messages


def test_a_live_holder_on_this_host_is_not_taken_over(aws: Aws, config: Config, build: FakeBuild):
    from ci.deploy.deploy_lock import owner

    plant_lock(aws, config, **owner("deploy", ""))  # this process: alive, same start time

    with pytest.raises(DeployFailedError, match="another deploy holds the deploy lock"):
        deploy(config, build.paths, aws, verifier=BytesCheck(build))


OTHER = {"command": "deploy", "host": "runner-other", "pid": 77, "user": "other", "commit": ""}
SKEW = timedelta(minutes=16)


def skew_runner_clock(monkeypatch: pytest.MonkeyPatch, by: timedelta) -> None:
    real = deploy_lock.now
    monkeypatch.setattr(deploy_lock, "now", lambda: real() + by)


def test_a_runner_whose_clock_is_16_minutes_fast_does_not_take_over_a_live_lock(
    aws: Aws, config: Config, monkeypatch: pytest.MonkeyPatch
):
    bucket, key = lock_location(aws, config)
    deploy_lock.acquire(aws.s3, bucket, key, OTHER, log=quiet)  # a runner with the right time
    skew_runner_clock(monkeypatch, SKEW)

    with pytest.raises(deploy_lock.DeployLockedError, match="runner-other"):
        deploy_lock.acquire(aws.s3, bucket, key, {**OTHER, "host": "runner-fast"}, log=quiet)
    assert read_lock(aws, config)["host"] == "runner-other"


def test_a_runner_whose_clock_is_16_minutes_slow_does_not_write_an_expired_lock(
    aws: Aws, config: Config, monkeypatch: pytest.MonkeyPatch
):
    bucket, key = lock_location(aws, config)
    skew_runner_clock(monkeypatch, -SKEW)
    deploy_lock.acquire(aws.s3, bucket, key, {**OTHER, "host": "runner-slow"}, log=quiet)
    monkeypatch.undo()

    with pytest.raises(deploy_lock.DeployLockedError, match="runner-slow"):
        deploy_lock.acquire(aws.s3, bucket, key, OTHER, log=quiet)  # a runner with the right time
    head = aws.s3.head_object(Bucket=bucket, Key=key)
    s3_now = datetime.fromisoformat(read_lock(aws, config)["expires_at"]) - timedelta(minutes=15)
    written = head["LastModified"]
    assert abs((s3_now - written).total_seconds()) < 60  # the record's times are S3's, not the slow runner's


class Takeover:
    """After the first artifact PutObject, another runner takes the lock; records every write sent after that."""

    def __init__(self, aws: Aws, other: Aws, bucket: str, key: str) -> None:
        self.other, self.bucket, self.key = other, bucket, key
        self.taken = False
        self.sent_after: list[str] = []
        self.last_path = ""
        for client in (aws.s3, aws.lambda_):
            service = client.meta.service_model.service_name
            client.meta.events.register(f"before-call.{service}", self.sending(service))
        aws.s3.meta.events.register("after-call.s3.PutObject", self.uploaded)

    def sending(self, service: str) -> Any:
        def record(model: Any, params: dict[str, Any], **_: Any) -> None:  # after the lock guard: on the wire
            self.last_path = str(params.get("url_path", ""))
            if self.taken and f"{service}:{model.name}" in WRITES and "/locks/" not in self.last_path:
                self.sent_after.append(f"{service}:{model.name} {self.last_path}")

        return record

    def uploaded(self, **_: Any) -> None:
        if not self.taken and "/locks/" not in self.last_path:
            self.taken = True  # as a runner taking over an expired lock writes it
            body = json.dumps({**OTHER, "host": "runner-9", "token": "x"}).encode()
            self.other.s3.put_object(Bucket=self.bucket, Key=self.key, Body=body)


def test_a_deploy_whose_lock_is_taken_over_stops_before_its_next_write(
    aws: Aws, moto: str, config: Config, build: FakeBuild
):
    """Taken over between two uploads of one step: not one more write reaches AWS."""
    other = connect(config, endpoint_url=moto, static_credentials=("test", "test"))
    takeover = Takeover(aws, other, *lock_location(aws, config))

    with pytest.raises(DeployFailedError) as lost:
        deploy(config, build.paths, aws, verifier=BytesCheck(build))

    message = str(lost.value)
    assert "step 'upload'" in message and "lost the deploy lock" in message and "runner-9" in message
    assert takeover.taken and takeover.sent_after == []
    assert read_lock(aws, config)["host"] == "runner-9"  # the new holder's lock stands
