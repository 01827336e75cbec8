"""A wall-clock deadline on every AWS call, and on each deploy step's calls together.

botocore's timeouts bound each socket read, not a trickle; an abandoned call may send nothing more
(`before-send` refuses), so a write never lands after the command has reported failure.
"""

from __future__ import annotations

import io
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ci.errors import PipelineError

FIX = (
    "check that the endpoint is up and answering (AWS_ENDPOINT_URL, region, network, proxy), then rerun; "
    "CI_AWS_CALL_DEADLINE / CI_DEPLOY_STEP_DEADLINE change the bounds"
)
_abandoned = threading.local()  # the worker thread's "give up" flag, read by before-send
_installed: weakref.WeakKeyDictionary[Any, Deadlines] = weakref.WeakKeyDictionary()


class DeadlineExceededError(PipelineError):
    """An AWS call (or a step's calls) did not finish in time: names the endpoint, the operation, the bound."""


@dataclass
class Deadlines:
    """Per-call and per-step wall-clock bounds shared by the clients of one connection.

    `step()` sets the current step's end; every call is bounded by the nearer of its own deadline
    and the step's. `capped()` narrows calls for a phase that must stay short (releasing the lock).
    """

    call_s: float
    step_s: float
    step_name: str = ""
    step_ends: float | None = None  # time.monotonic() value
    cap_s: float | None = None

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        outer = (self.step_name, self.step_ends)
        self.step_name, self.step_ends = name, time.monotonic() + self.step_s
        try:
            yield
        finally:
            self.step_name, self.step_ends = outer

    @contextmanager
    def capped(self, seconds: float) -> Iterator[None]:
        outer = self.cap_s
        self.cap_s = seconds if outer is None else min(outer, seconds)
        try:
            yield
        finally:
            self.cap_s = outer

    def budget(self) -> tuple[float, str]:
        """(seconds left for the next call, what bounds it)."""
        left, why = self.call_s, f"the {self.call_s:g} s per-call deadline, every attempt included"
        if self.cap_s is not None and self.cap_s < left:
            left, why = self.cap_s, f"a {self.cap_s:g} s bound"
        if self.step_ends is not None:
            step_left = self.step_ends - time.monotonic()
            if step_left < left:
                left, why = step_left, f"step '{self.step_name}''s {self.step_s:g} s deadline"
        return left, why

    def install(self, client: Any) -> None:
        """Bound every operation method of `client` (as instance attributes, so paginators and waiters use them)."""
        from botocore import xform_name

        service = client.meta.service_model.service_name
        for operation in client.meta.service_model.operation_names:
            model = client.meta.service_model.operation_model(operation)
            method = xform_name(operation)
            setattr(client, method, self._bounded(client, service, model, getattr(client, method)))
        client.meta.events.register(f"before-send.{service}", refuse_abandoned)
        _installed[client] = self

    def _bounded(self, client: Any, service: str, model: Any, method: Callable[..., Any]) -> Callable[..., Any]:
        payload = model.output_shape.serialization.get("payload") if model.has_streaming_output else None

        def call(*args: Any, **kwargs: Any) -> Any:
            what = f"{client.meta.endpoint_url} ({service} {model.name})"
            seconds, why = self.budget()
            if seconds <= 0:
                raise DeadlineExceededError(f"{what} was not called: {why} had passed", FIX)
            return run_within(lambda: read_payload(method(*args, **kwargs), payload), seconds, what, why)

        call.__name__ = method.__name__
        call.__doc__ = method.__doc__
        return call


def read_payload(response: Any, payload: str | None) -> Any:
    """A streaming body (GetObject's Body, Invoke's Payload) read now, inside the call's deadline."""
    if payload is None or not isinstance(response, dict) or payload not in response:
        return response
    from botocore.response import StreamingBody

    data = response[payload].read()
    response[payload] = StreamingBody(io.BytesIO(data), len(data))
    return response


def run_within(work: Callable[[], Any], seconds: float, what: str, why: str) -> Any:
    """`work()` on a daemon thread; its result or exception, or DeadlineExceededError after `seconds`."""
    done, abandoned = threading.Event(), threading.Event()
    box: dict[str, Any] = {}

    def worker() -> None:
        _abandoned.event = abandoned
        try:
            box["result"] = work()
        except BaseException as exc:  # handed to the caller as is
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=worker, name=f"aws call {what}", daemon=True).start()
    if not done.wait(seconds):
        abandoned.set()
        if not done.is_set():
            raise DeadlineExceededError(f"{what} did not finish within {why}", FIX)
    if "error" in box:
        raise box["error"]
    return box["result"]


def refuse_abandoned(**_: Any) -> None:
    """before-send: a call its caller gave up on sends nothing more (its retry would land unseen)."""
    event = getattr(_abandoned, "event", None)
    if event is not None and event.is_set():
        raise DeadlineExceededError("an abandoned AWS call tried to send another request", FIX)


@contextmanager
def capped(client: Any, seconds: float) -> Iterator[None]:
    """Calls of `client` bounded by `seconds` for the block (a no-op for a client without deadlines)."""
    deadlines = _installed.get(client)
    if deadlines is None:
        yield
        return
    with deadlines.capped(seconds):
        yield
