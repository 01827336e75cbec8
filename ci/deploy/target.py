"""Where a command deploys: the caller's AWS (or emulator), else the local moto emulator, whose state
persists in build/local-aws/; inside GitHub Actions the emulator must be asked for (--target embedded)."""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import shutil
import urllib.request
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from ci.config import Config
from ci.deploy.aws import Aws, connect, credentials_configured, endpoint_configured
from ci.errors import PipelineError
from ci.paths import BuildPaths

logger = logging.getLogger(__name__)

MODES = ("auto", "embedded", "aws")


def add_target_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        choices=MODES,
        default="auto",
        help="auto (default): boto3's configuration if any, else the local AWS emulator (state in "
        "build/local-aws/); embedded: always the local emulator; aws: always boto3's configuration",
    )


def wants_embedded(mode: str, environ: Mapping[str, str] = os.environ) -> bool:
    if mode != "auto":
        return mode == "embedded"
    if endpoint_configured(environ) or credentials_configured(environ):
        return False
    if environ.get("GITHUB_ACTIONS") == "true":
        raise PipelineError(
            "no AWS credentials in this GitHub Actions job: refusing to fall back to the embedded emulator, "
            "which would report a deploy that never reached AWS",
            "give the job `permissions: id-token: write` and an aws-actions/configure-aws-credentials step with the "
            "DeployRoleArn output of the bootstrap stack; `--target embedded` deploys to a throwaway moto on purpose",
        )
    return True


@contextmanager
def deployment_target(
    config: Config, paths: BuildPaths, mode: str = "auto", bootstrapped: bool = True
) -> Iterator[Aws]:
    """Yield connected clients; for the embedded default, the local emulator (its stack bootstrapped if asked)."""
    if not wants_embedded(mode):
        yield connect(config)
        return
    from ci.deploy.stack import EMBEDDED_REPOSITORY, bootstrap, find_stack, stack_parameters

    state = paths.build / LOCAL_STATE
    with local_aws(state) as url:
        logger.info(
            f"no AWS endpoint or credentials configured: using the local AWS emulator at {url} (state: {state})"
        )
        aws = connect(config, endpoint_url=url, static_credentials=("embedded", "embedded"), embedded=True)
        if bootstrapped and find_stack(aws, config.deploy.stack_name) is None:
            bootstrap(aws, config, stack_parameters(config, EMBEDDED_REPOSITORY, None))
            logger.info(f"bootstrapped stack {config.deploy.stack_name} from infra/template.yaml on the local emulator")
        if bootstrapped:
            from ci.deploy.shift import calm_local_alarms

            calm_local_alarms(aws, config)
        yield aws
        logger.info(f"local AWS emulator stopped; its state stays in {state} (see `python -m ci status`)")


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
def _exclusive(state: Path) -> Iterator[None]:
    """One command at a time on the local account, as if it were one: a second waits, saying so."""
    with (state / "lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info(f"waiting for another command using the local AWS emulator ({state})")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield  # the kernel releases the lock when the file closes, even if this process is killed


@contextmanager
def local_aws(state: Path) -> Iterator[str]:
    """moto on 127.0.0.1 holding everything earlier commands did to it (replayed from `state`), and this one's too."""
    from moto.moto_api import recorder
    from moto.server import ThreadedMotoServer

    state.mkdir(parents=True, exist_ok=True)
    recording = state / RECORDING
    quiet_moto()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)  # a free port
    with _exclusive(state):
        server.start()
        try:
            host, port = server.get_host_and_port()
            url = f"http://{host}:{port}"
            configure_moto(url)
            recorder._location = str(recording)  # moto reads MOTO_RECORDER_FILEPATH only at import
            if recording.is_file():
                data = recording.read_bytes()  # a killed command may have left its last request half-written
                if data and not data.endswith(b"\n"):
                    with recording.open("r+b") as handle:
                        handle.truncate(data.rfind(b"\n") + 1)
                recorder.replay_recording(target_host=url)
            recorder.start_recording()
            yield url
        finally:
            recorder.stop_recording()
            server.stop()


def reset_local(state: Path) -> bool:
    if not state.exists():
        return False
    with (state / "lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # not while a command uses it
        (state / RECORDING).unlink(missing_ok=True)
    shutil.rmtree(state, ignore_errors=True)
    return True
