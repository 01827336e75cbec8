"""A local Lambda Runtime API (2018-06-01), with SnapStart's restore routes, so the real awslambdaric runs unchanged."""

from __future__ import annotations

import json
import queue
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

PREFIX = "/2018-06-01/runtime"
Seen = TypeVar("Seen")


@dataclass
class Invocation:
    request_id: str
    body: bytes
    timeout_s: float
    function_arn: str
    handed_out: float | None = None  # time.monotonic() when /next returned it


@dataclass
class Outcome:
    request_id: str
    kind: str  # "response" | "error"
    body: bytes
    duration_s: float

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


@dataclass
class ApiState:
    pending: queue.Queue[Invocation] = field(default_factory=queue.Queue)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    in_flight: dict[str, Invocation] = field(default_factory=dict)
    first_next: float | None = None
    init_error: dict[str, Any] | None = None
    init_error_type: str | None = None
    changed: threading.Condition = field(default_factory=threading.Condition)  # notified on every change
    stopping: bool = False
    snapshot_at: float | None = None  # GET /restore/next: init and the before-snapshot hooks are done
    restored_at: float | None = None  # the harness answered it: the environment is "restored"
    restore: threading.Event = field(default_factory=threading.Event)
    restore_error: dict[str, Any] | None = None

    def note(self, **changes: Any) -> None:
        with self.changed:
            for name, value in changes.items():
                setattr(self, name, value)
            self.changed.notify_all()


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

    def do_GET(self) -> None:
        state = self.server.state
        if self.path == f"{PREFIX}/restore/next":  # the snapshot point: answered once the harness restores
            state.note(snapshot_at=time.monotonic())
            while not state.restore.wait(0.2):
                if state.stopping:
                    self.close_connection = True
                    return
            self._reply(200, b"{}")
            return
        if self.path != f"{PREFIX}/invocation/next":
            self._reply(404, b'{"errorType": "NotFound"}')
            return
        state.note(first_next=state.first_next or time.monotonic())
        while True:
            try:
                invocation = state.pending.get(timeout=0.2)
                break
            except queue.Empty:
                if state.stopping:
                    self.close_connection = True
                    return
        now = time.time()
        invocation.handed_out = time.monotonic()
        state.in_flight[invocation.request_id] = invocation
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
        state = self.server.state
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == f"{PREFIX}/restore/error":
            state.note(restore_error=_error_body(body))
            self._reply(202)
            return
        if self.path == f"{PREFIX}/init/error":
            error_type = self.headers.get("Lambda-Runtime-Function-Error-Type")
            state.note(init_error_type=error_type, init_error=_error_body(body))
            self._reply(202)
            return
        parts = self.path.removeprefix(f"{PREFIX}/invocation/").split("/")
        if len(parts) != 2 or parts[1] not in ("response", "error") or parts[0] not in state.in_flight:
            self._reply(400, b'{"errorType": "InvalidRequestID"}')
            return
        invocation = state.in_flight.pop(parts[0])
        duration = time.monotonic() - (invocation.handed_out or time.monotonic())
        with state.changed:
            state.outcomes[parts[0]] = Outcome(parts[0], parts[1], body, duration)
            state.changed.notify_all()
        self._reply(202)


def _error_body(body: bytes) -> Any:
    """An init or restore error as the client posted it: its JSON, or its text when it is not JSON."""
    try:
        return json.loads(body.decode("utf-8") or "{}")
    except ValueError:
        return {"errorMessage": body.decode("utf-8", "replace")}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: ApiState

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # the harness ended the client: expected
            super().handle_error(request, client_address)


class RuntimeApi:
    """The server on 127.0.0.1, on a free port, in a background thread."""

    def __init__(self) -> None:
        self.state = ApiState()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = self.state
        self._thread = threading.Thread(target=self._server.serve_forever, name="runtime-api", daemon=True)
        self.address = f"127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> RuntimeApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.state.stopping = True
        self._server.shutdown()
        self._server.server_close()

    def submit(self, invocation: Invocation) -> None:
        self.state.pending.put(invocation)

    def wait_init(self, timeout_s: float, still_running: Callable[[], bool]) -> str:
        """ "ready" (it asks for work), "snapshot" (SnapStart: it asks to be restored), "error", "exited", "timeout"."""

        def seen() -> str | None:
            if self.state.init_error is not None:
                return "error"
            if self.state.first_next is not None:
                return "ready"
            return "snapshot" if self.state.snapshot_at is not None else None

        return self._wait_for(seen, timeout_s, still_running)

    def release_restore(self) -> None:
        """Restore the snapshotted environment: answer the pending GET /restore/next."""
        self.state.restored_at = time.monotonic()
        self.state.restore.set()

    def wait_restored(self, timeout_s: float, still_running: Callable[[], bool]) -> str:
        """After release_restore: "ready" (it asks for work), "error" (restore/error), "exited" or "timeout"."""

        def seen() -> str | None:
            if self.state.restore_error is not None:
                return "error"
            return "ready" if self.state.first_next is not None else None

        return self._wait_for(seen, timeout_s, still_running)

    def wait_outcome(self, request_id: str, timeout_s: float, still_running: Callable[[], bool]) -> Outcome | None:
        """The answer to request_id, or None if the process died or the time is up."""
        found = self._wait_for(lambda: self.state.outcomes.pop(request_id, None), timeout_s, still_running)
        return found if isinstance(found, Outcome) else None

    def _wait_for(
        self, seen: Callable[[], Seen | None], timeout_s: float, still_running: Callable[[], bool]
    ) -> Seen | str:
        """What `seen` reports once it reports something, else "exited" or "timeout"; woken by every change."""
        deadline = time.monotonic() + timeout_s
        with self.state.changed:
            while True:
                found = seen()
                if found is not None:
                    return found
                if not still_running():
                    return "exited"
                left = deadline - time.monotonic()
                if left <= 0:
                    return "timeout"
                self.state.changed.wait(min(left, 0.05))
