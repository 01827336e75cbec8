"""The embedded default: a moto server on 127.0.0.1 for a machine with no AWS account.

moto's recorder keeps its state in build/local-aws/ between commands (docs/design.md, "A local AWS");
`use_docker` off keeps it usable without Docker (deploy then proves the bytes with the smoke harness).
"""

from __future__ import annotations

import fcntl
import json
import logging
import shutil
import urllib.request
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

LOCAL_STATE = "local-aws"  # under the build directory
RECORDING = "requests.jsonl"


def configure_moto(endpoint_url: str) -> None:
    """Tell a moto server (ours or someone else's) not to need Docker for Lambda."""
    request = urllib.request.Request(
        f"{endpoint_url}/moto-api/config",
        data=json.dumps({"lambda": {"use_docker": False}}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def quiet_moto() -> None:
    """moto logs every request and warns about template resources it does not emulate; keep output readable."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("moto").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"moto\..*")


@contextmanager
def moto_server() -> Iterator[str]:
    """Start moto on 127.0.0.1 (a free port), yield its URL, stop it afterwards."""
    from moto.server import ThreadedMotoServer

    quiet_moto()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        configure_moto(url)
        yield url
    finally:
        server.stop()


def recording_of(state: Path) -> Path:
    return state / RECORDING


@contextmanager
def _exclusive(state: Path) -> Iterator[None]:
    """One command at a time on the local account, as if it were one: a second waits, saying so."""
    with (state / "lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info(f"waiting for another command using the local AWS emulator ({state})")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield  # the kernel releases the lock when the file closes, even if this process is killed


def _complete_lines(recording: Path) -> None:
    """Drop a last request a killed command left half-written (everything before it stands, as on AWS)."""
    data = recording.read_bytes()
    if data and not data.endswith(b"\n"):
        with recording.open("r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)


@contextmanager
def local_aws(state: Path) -> Iterator[str]:
    """moto on 127.0.0.1 holding everything earlier commands did to it (replayed from `state`), and this one's too."""
    from moto.moto_api import recorder

    state.mkdir(parents=True, exist_ok=True)
    recording = recording_of(state)
    with _exclusive(state), moto_server() as url:
        recorder._location = str(recording)  # moto reads MOTO_RECORDER_FILEPATH only at import
        if recording.is_file():
            _complete_lines(recording)
            recorder.replay_recording(target_host=url)
        recorder.start_recording()
        try:
            yield url
        finally:
            recorder.stop_recording()


def reset_local(state: Path) -> bool:
    """Forget everything deployed locally; False if there was nothing."""
    if not state.exists():
        return False
    with (state / "lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # not while a command uses it
        recording_of(state).unlink(missing_ok=True)
    shutil.rmtree(state, ignore_errors=True)
    return True


def local_size(state: Path) -> int:
    recording = recording_of(state)
    return recording.stat().st_size if recording.is_file() else 0
