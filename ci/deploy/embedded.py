"""The embedded default: a moto server on 127.0.0.1 for a machine with no AWS account.

moto's Lambda runs code only in Docker; switching `use_docker` off (before anything is created,
it selects the backend) keeps it usable without a Docker engine: deploy then proves the deployed
bytes with the smoke harness instead of invoking them (see ci/deploy/verify.py).
"""

from __future__ import annotations

import json
import logging
import urllib.request
import warnings
from collections.abc import Iterator
from contextlib import contextmanager


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
