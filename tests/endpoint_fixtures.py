"""Misbehaving endpoints on 127.0.0.1, as real sockets: silent, trickling, and a relay in front of moto.

The relay forwards bytes both ways; it can delay every request (a slow endpoint that does answer)
or, once the deploy lock has been written through it, hold every later request (a deploy frozen
while it holds the lock, for a test to kill).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

METHODS = (b"GET ", b"PUT ", b"POST ", b"HEAD ", b"DELETE ")


@contextmanager
def serve(handle: Callable[[socket.socket, threading.Event], None]) -> Iterator[str]:
    """http://127.0.0.1:<port> whose every accepted connection runs `handle` on its own thread."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    stop = threading.Event()
    connections: list[socket.socket] = []

    def accept() -> None:
        while not stop.is_set():
            try:
                connection = server.accept()[0]
            except OSError:
                continue
            connections.append(connection)
            threading.Thread(target=handle, args=(connection, stop), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for connection in connections:
            connection.close()
        server.close()


def silent(connection: socket.socket, stop: threading.Event) -> None:
    """Accept and never send a byte."""
    stop.wait()


def trickle(every_s: float, for_s: float = 30.0) -> Callable[[socket.socket, threading.Event], None]:
    """Answer a status line, then one header byte every `every_s` seconds (for at most `for_s`), never finishing."""

    def handle(connection: socket.socket, stop: threading.Event) -> None:
        connection.settimeout(5)
        try:
            connection.recv(65536)  # the request's head
            connection.sendall(b"HTTP/1.1 200 OK\r\nX-Trickle: ")
            ends = time.monotonic() + for_s
            while not stop.wait(every_s) and time.monotonic() < ends:
                connection.sendall(b"a")
        except OSError:
            pass
        finally:
            connection.close()

    return handle


class Relay:
    """127.0.0.1 relay to `upstream`: `delay_s` before each request; `stall_after_lock` freezes after the lock put."""

    def __init__(self, upstream: str, delay_s: float = 0.0, stall_after_lock: bool = False) -> None:
        parsed = urlparse(upstream)
        self.upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.delay_s = delay_s
        self.stall_after_lock = stall_after_lock
        self.stalled = threading.Event()

    def handle(self, client: socket.socket, stop: threading.Event) -> None:
        server = socket.create_connection(self.upstream, timeout=30)
        lock_put = threading.Event()

        def upstream() -> None:  # client -> server
            try:
                while chunk := client.recv(65536):
                    if chunk.startswith(METHODS):
                        while self.stalled.is_set() and not stop.is_set():
                            time.sleep(0.05)  # frozen: the request is never forwarded
                        time.sleep(self.delay_s)
                        if chunk.startswith(b"PUT ") and b"/locks/" in chunk.split(b"\r\n", 1)[0]:
                            lock_put.set()
                    server.sendall(chunk)
            except OSError:
                pass
            finally:
                server.close()

        threading.Thread(target=upstream, daemon=True).start()
        try:
            while chunk := server.recv(65536):
                client.sendall(chunk)
                if self.stall_after_lock and lock_put.is_set():
                    self.stalled.set()
        except OSError:
            pass
        finally:
            client.close()

    @contextmanager
    def running(self) -> Iterator[str]:
        with serve(self.handle) as url:
            yield url
