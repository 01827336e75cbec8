"""A lock is resolved for the target's Python version, never by fetching that Python.

uv, asked for `--python-version 3.9` with no 3.9 on the machine, downloads a CPython build from
GitHub (no hash, into ~/.local/share/uv). Here a recording server on 127.0.0.1 stands in as uv's
Python download mirror and the index is a file:// one made in the test: a resolve must succeed
without one request reaching the mirror.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from ci.lock.lockfile import read_lock
from ci.lock.resolve import LockJob, compile_lock
from tests.what_if_fixtures import add_wheel, package, write_index


class _Recorder(BaseHTTPRequestHandler):
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        self.send_error(404)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002  (the base class names it)
        pass


@pytest.fixture()
def python_mirror(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[list[str]]:
    """uv's Python downloads go to a loopback server that records them; no Python on PATH."""
    _Recorder.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("UV_PYTHON_INSTALL_MIRROR", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(tmp_path / "uv-pythons"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.delenv("UV_PYTHON_DOWNLOADS", raising=False)
    try:
        yield _Recorder.requests
    finally:
        server.shutdown()
        server.server_close()


def test_resolving_for_a_python_the_machine_lacks_downloads_no_interpreter(
    tmp_path: Path, python_mirror: list[str]
) -> None:
    add_wheel(tmp_path / "index", "smallpkg", "1.0", package("smallpkg"))
    index_url = write_index(tmp_path / "index")
    (tmp_path / "requirements.in").write_text("smallpkg\n")
    job = LockJob(
        name="layer",
        cwd=tmp_path,
        inputs=("requirements.in",),
        output=tmp_path / "requirements-layer.txt",
        python_platform="x86_64-manylinux_2_17",
        python_version="3.9",  # no 3.9 on this machine or in the test's PATH
        only_binary=True,
    )

    compile_lock(job, index_url, uv_cache=tmp_path / "uv-cache")

    assert read_lock(job.output).pins["smallpkg"].version == "1.0"
    assert python_mirror == [], f"uv tried to download a Python for the lock: {python_mirror}"
    installed = tmp_path / "uv-pythons"
    assert not installed.exists() or not any(installed.iterdir()), "uv installed a Python for the lock"
