"""An endpoint that accepts connections and never answers fails a deploy fast, naming the endpoint.

The endpoint is a real socket server on 127.0.0.1 that accepts and then says nothing; the bounds
are shortened through the same environment variables a user would set.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from ci.config import Config
from ci.deploy.aws import Timeouts, connect
from ci.deploy.deployer import DeployFailedError, deploy

pytest.register_assert_rewrite("tests.moto_fixtures")  # its fixtures are a plugin (below); rewrite before import
from tests.moto_fixtures import BytesCheck, FakeBuild  # noqa: E402

pytest_plugins = ["tests.moto_fixtures"]


@pytest.fixture()
def silent_endpoint() -> Iterator[str]:
    """http://127.0.0.1:<port> that accepts every connection and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    server.close()


def test_a_silent_endpoint_fails_the_deploy_within_the_bound_and_names_it(
    silent_endpoint: str, config: Config, build: FakeBuild, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("CI_AWS_CONNECT_TIMEOUT", "1")
    monkeypatch.setenv("CI_AWS_READ_TIMEOUT", "1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    aws = connect(config, endpoint_url=silent_endpoint, static_credentials=("test", "test"))
    started = time.monotonic()

    with pytest.raises(DeployFailedError) as failed:
        deploy(config, build.paths, aws, verifier=BytesCheck(build), log=lambda _: None)

    elapsed = time.monotonic() - started
    assert elapsed < 10, f"took {elapsed:.1f} s for 2 attempts of a 1 s read timeout"
    message = str(failed.value)
    assert f"{silent_endpoint}/ accepted the connection but did not answer" in message
    assert "connect 1 s, read 1 s, 2 attempt(s)" in message
    assert "step 'read stack and alias'" in message
    assert "does not exist yet" not in message  # the alias was never read: no claim about it
    assert "alias live was not read" in message
    assert "CI_AWS_READ_TIMEOUT" in failed.value.fix


def test_the_default_bounds_fail_a_silent_endpoint_in_under_two_minutes():
    bounds = Timeouts.from_environ({})
    backoff = 1.0 * (bounds.attempts - 1)  # botocore standard mode: at most 2**n seconds, n from 0
    assert bounds.attempts * max(bounds.connect_s, bounds.read_s) + backoff < 120
