"""An endpoint that never answers, or trickles, fails a deploy within the bound, naming it and the step.

The endpoints are real sockets on 127.0.0.1 (tests/endpoint_fixtures.py); the bounds are shortened
through the same environment variables a user would set, so each test takes seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from ci.config import Config
from ci.deploy.aws import Timeouts, connect
from ci.deploy.deployer import DeployFailedError, deploy

pytest.register_assert_rewrite("tests.moto_fixtures")  # its fixtures are a plugin (below); rewrite before import
from tests.endpoint_fixtures import Relay, serve, silent, trickle  # noqa: E402
from tests.moto_fixtures import BytesCheck, FakeBuild  # noqa: E402

pytest_plugins = ["tests.moto_fixtures"]
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")


@pytest.fixture()
def silent_endpoint() -> Iterator[str]:
    """http://127.0.0.1:<port> that accepts every connection and never sends a byte."""
    with serve(silent) as url:
        yield url


@pytest.fixture()
def trickling_endpoint() -> Iterator[str]:
    """http://127.0.0.1:<port> that answers a byte every 0.3 s and never finishes (30 s at most)."""
    with serve(trickle(every_s=0.3)) as url:
        yield url


def failed_deploy(url: str, config: Config, build: FakeBuild) -> tuple[DeployFailedError, float]:
    """A deploy against `url` (timeouts from the environment), which must fail: the error and the seconds it took."""
    aws = connect(config, endpoint_url=url, static_credentials=("test", "test"))
    started = time.monotonic()
    with pytest.raises(DeployFailedError) as failed:
        deploy(config, build.paths, aws, verifier=BytesCheck(build))
    return failed.value, time.monotonic() - started


def test_a_silent_endpoint_fails_the_deploy_within_the_bound_and_names_it(
    silent_endpoint: str, config: Config, build: FakeBuild, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("CI_AWS_CONNECT_TIMEOUT", "1")
    monkeypatch.setenv("CI_AWS_READ_TIMEOUT", "1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    failed, elapsed = failed_deploy(silent_endpoint, config, build)
    assert elapsed < 10, f"took {elapsed:.1f} s for 2 attempts of a 1 s read timeout"
    message = str(failed)
    assert f"{silent_endpoint}/ accepted the connection but did not answer" in message
    assert "connect 1 s, read 1 s, 2 attempt(s)" in message
    assert "step 'read stack and alias'" in message
    assert "does not exist yet" not in message  # the alias was never read: no claim about it
    assert "alias live was not read" in message
    assert "CI_AWS_READ_TIMEOUT" in failed.fix


@pytest.mark.parametrize("endpoint", ["silent_endpoint", "trickling_endpoint"])
def test_a_dead_or_trickling_endpoint_fails_the_deploy_at_the_call_deadline(
    endpoint: str, config: Config, build: FakeBuild, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
):
    """Per-read timeouts far above the deadline: only a wall-clock bound on the whole call can stop these."""
    url = request.getfixturevalue(endpoint)
    monkeypatch.setenv("CI_AWS_READ_TIMEOUT", "20")
    monkeypatch.setenv("CI_AWS_CALL_DEADLINE", "2")
    failed, elapsed = failed_deploy(url, config, build)
    assert elapsed < 6, f"took {elapsed:.1f} s against a 2 s call deadline"
    first = str(failed).splitlines()[0]
    assert first.startswith("deploy failed at step 'read stack and alias': ")
    assert f"{url} (cloudformation DescribeStacks) did not finish within the 2 s per-call deadline" in first
    assert "CI_AWS_CALL_DEADLINE" in failed.fix


def test_a_slow_endpoint_fails_a_step_at_the_step_deadline(
    moto: str, aws: object, config: Config, build: FakeBuild, monkeypatch: pytest.MonkeyPatch
):
    """Each answer arrives well within the call deadline, but the step's calls together may not take longer."""
    relay = Relay(moto, delay_s=0.6)
    monkeypatch.setenv("CI_AWS_CALL_DEADLINE", "10")
    monkeypatch.setenv("CI_DEPLOY_STEP_DEADLINE", "1")
    with relay.running() as url:
        failed, elapsed = failed_deploy(url, config, build)

    assert elapsed < 5, f"took {elapsed:.1f} s against a 1 s step deadline"
    first = str(failed).splitlines()[0]
    assert first.startswith("deploy failed at step 'read stack and alias': ")
    assert f"{url} (lambda GetAlias)" in first and "step 'read stack and alias''s 1 s deadline" in first


def test_the_default_bounds_fail_a_dead_endpoint_in_under_two_minutes(config: Config):
    """The worst case: the failing call's whole deadline, then releasing the lock (itself capped)."""
    from ci.deploy.deploy_lock import RELEASE_S

    bounds = Timeouts.from_environ({})
    assert bounds.call_s + min(RELEASE_S, bounds.call_s) <= 120
    aws = connect(config, endpoint_url="http://127.0.0.1:9", static_credentials=("test", "test"), environ={})
    for client in (aws.s3, aws.lambda_, aws.cloudformation):  # botocore's max_attempts counts retries, not attempts
        assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": bounds.attempts}
