"""A local Lambda Runtime API (2018-06-01), with SnapStart's restore routes, so the real awslambdaric runs unchanged."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple, TypeVar

PREFIX = "/2018-06-01/runtime"
Seen = TypeVar("Seen")


@dataclass
class Invocation:
    request_id: str
    body: bytes
    timeout_s: float
    function_arn: str
    handed_out: float | None = None  # time.monotonic() when /next returned it


class Outcome(NamedTuple):
    kind: str  # "response" | "error"
    body: bytes
    duration_s: float

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Without it, Nagle's algorithm and the client's delayed ACK add ~40 ms to every invocation.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        return  # the harness reports; no access log on stderr

    def _reply(self, code: int, body: bytes = b'{"status": "OK"}', headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _hold(self, seen: Callable[[], Seen | None]) -> Seen | None:
        """Hold the long poll until `seen` gives something; None (closing the connection) when the server stops."""
        api = self.server.api
        with api.changed:
            while (found := seen()) is None:
                if api.stopping:
                    self.close_connection = True
                    return None
                api.changed.wait(0.2)
            return found

    def do_GET(self) -> None:
        api = self.server.api
        if self.path == f"{PREFIX}/restore/next":  # the snapshot point: answered once the harness restores
            api.note(snapshot_at=time.monotonic())
            if self._hold(lambda: api.restored_at) is not None:
                self._reply(200, b"{}")
            return
        if self.path != f"{PREFIX}/invocation/next":
            self._reply(404, b'{"errorType": "NotFound"}')
            return
        api.note(first_next=api.first_next or time.monotonic())
        invocation = self._hold(lambda: api.pending.pop(0) if api.pending else None)
        if invocation is None:
            return
        now = time.time()
        invocation.handed_out = time.monotonic()
        api.in_flight[invocation.request_id] = invocation
        self._reply(
            200,
            invocation.body,
            {
                "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                "Lambda-Runtime-Deadline-Ms": str(int((now + invocation.timeout_s) * 1000)),
                "Lambda-Runtime-Invoked-Function-Arn": invocation.function_arn,
                "Lambda-Runtime-Trace-Id": f"Root=1-{int(now):08x}-{invocation.request_id[-24:]:0>24};Sampled=0",
            },
        )

    def do_POST(self) -> None:
        api = self.server.api
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == f"{PREFIX}/restore/error":
            api.note(restore_error=_error_body(body))
            self._reply(202)
            return
        if self.path == f"{PREFIX}/init/error":
            error_type = self.headers.get("Lambda-Runtime-Function-Error-Type")
            api.note(init_error_type=error_type, init_error=_error_body(body))
            self._reply(202)
            return
        parts = self.path.removeprefix(f"{PREFIX}/invocation/").split("/")
        if len(parts) != 2 or parts[1] not in ("response", "error") or parts[0] not in api.in_flight:
            self._reply(400, b'{"errorType": "InvalidRequestID"}')
            return
        invocation = api.in_flight.pop(parts[0])
        duration = time.monotonic() - (invocation.handed_out or time.monotonic())
        with api.changed:
            api.outcomes[parts[0]] = Outcome(parts[1], body, duration)
            api.changed.notify_all()
        self._reply(202)


def _error_body(body: bytes) -> Any:
    """An init or restore error as the client posted it: its JSON, or its text when it is not JSON."""
    try:
        return json.loads(body.decode("utf-8") or "{}")
    except ValueError:
        return {"errorMessage": body.decode("utf-8", "replace")}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    api: RuntimeApi

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # the harness ended the client: expected
            super().handle_error(request, client_address)


class RuntimeApi:
    """The server on 127.0.0.1, on a free port, in a background thread, and what the client has told it so far."""

    def __init__(self) -> None:
        self.pending: list[Invocation] = []
        self.in_flight: dict[str, Invocation] = {}
        self.outcomes: dict[str, Outcome] = {}
        self.first_next: float | None = None
        self.init_error: dict[str, Any] | None = None
        self.init_error_type: str | None = None
        self.snapshot_at: float | None = None  # GET /restore/next: init and the before-snapshot hooks are done
        self.restored_at: float | None = None  # the harness answered it: the environment is "restored"
        self.restore_error: dict[str, Any] | None = None
        self.stopping = False
        self.changed = threading.Condition()  # notified on every change
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.api = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="runtime-api", daemon=True)
        self.address = f"127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> RuntimeApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping = True
        self._server.shutdown()
        self._server.server_close()

    def note(self, **changes: Any) -> None:
        with self.changed:
            for name, value in changes.items():
                setattr(self, name, value)
            self.changed.notify_all()

    def submit(self, invocation: Invocation) -> None:
        with self.changed:
            self.pending.append(invocation)
            self.changed.notify_all()

    def wait_init(self, timeout_s: float, still_running: Callable[[], bool]) -> str:
        """ "ready" (it asks for work), "snapshot" (SnapStart: it asks to be restored), "error", "exited", "timeout"."""
        return self._wait_for(
            lambda: _first_set(error=self.init_error, ready=self.first_next, snapshot=self.snapshot_at),
            timeout_s,
            still_running,
        )

    def wait_restored(self, timeout_s: float, still_running: Callable[[], bool]) -> str:
        """Restore the snapshot (answer GET /restore/next); then "ready", "error", "exited" or "timeout"."""
        self.note(restored_at=time.monotonic())
        return self._wait_for(
            lambda: _first_set(error=self.restore_error, ready=self.first_next), timeout_s, still_running
        )

    def wait_outcome(self, request_id: str, timeout_s: float, still_running: Callable[[], bool]) -> Outcome | None:
        """The answer to request_id, or None if the process died or the time is up."""
        found = self._wait_for(lambda: self.outcomes.pop(request_id, None), timeout_s, still_running)
        return found if isinstance(found, Outcome) else None

    def _wait_for(
        self, seen: Callable[[], Seen | None], timeout_s: float, still_running: Callable[[], bool]
    ) -> Seen | str:
        """What `seen` reports once it reports something, else "exited" or "timeout"; woken by every change."""
        deadline = time.monotonic() + timeout_s
        with self.changed:
            while (found := seen()) is None:
                if not still_running():
                    return "exited"
                left = deadline - time.monotonic()
                if left <= 0:
                    return "timeout"
                self.changed.wait(min(left, 0.05))
            return found


def _first_set(**values: object) -> str | None:
    """The name of the first value that is set."""
    return next((name for name, value in values.items() if value is not None), None)
