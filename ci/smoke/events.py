"""The committed smoke events (tests/events/*.json) and the judging of an answer against one.

An event file is {"description", "event", "expect": {"status", "recall_probability"?, "tolerance"?,
"error_field"?}}. HTTP events (API Gateway v1/v2, Function URL) must come back as
{"statusCode", "headers", "body": JSON}; direct invocations as the plain dict.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci.errors import PipelineError


@dataclass(frozen=True)
class SmokeEvent:
    name: str
    description: str
    event: Any
    status: int
    recall_probability: list[float] | None
    tolerance: float
    error_field: str | None

    @property
    def is_http(self) -> bool:
        """API Gateway v1 has httpMethod, v2 and Function URLs rawPath/routeKey; all have requestContext."""
        return isinstance(self.event, dict) and any(
            key in self.event for key in ("httpMethod", "rawPath", "routeKey", "requestContext")
        )


def load_events(directory: Path, default_tolerance: float) -> list[SmokeEvent]:
    files = sorted(directory.glob("*.json"))
    if not files:
        raise PipelineError(
            f"no smoke events in {directory}",
            "commit events as tests/events/*.json (see the README) or set smoke.events in pipeline.toml",
        )
    events = []
    for file in files:
        try:
            data = json.loads(file.read_text())
            expect = data["expect"]
            events.append(
                SmokeEvent(
                    name=file.stem,
                    description=str(data.get("description", "")),
                    event=data["event"],
                    status=int(expect["status"]),
                    recall_probability=expect.get("recall_probability"),
                    tolerance=float(expect.get("tolerance", default_tolerance)),
                    error_field=expect.get("error_field"),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise PipelineError(
                f"smoke event {file} is malformed ({exc.__class__.__name__}: {exc})",
                'each event needs {"description", "event", "expect": {"status", ...}}',
            ) from exc
    return events


def _answer(event: SmokeEvent, response: Any) -> tuple[int | None, Any, str | None]:
    """(status, body dict, problem) of a handler's response."""
    if event.is_http:
        if not isinstance(response, dict) or "statusCode" not in response:
            return None, response, "an HTTP event must get {statusCode, headers, body}, got " + _short(response)
        try:
            body = json.loads(response.get("body") or "null")
        except (TypeError, ValueError):
            return int(response["statusCode"]), None, "the HTTP body is not JSON: " + _short(response.get("body"))
        return int(response["statusCode"]), body, None
    if not isinstance(response, dict):
        return None, response, "a direct invocation must return a dict, got " + _short(response)
    if "statusCode" in response:
        return None, response, "a direct invocation got an HTTP-shaped answer: " + _short(response)
    error = response.get("error")
    status = int(error.get("status", 400)) if isinstance(error, dict) else 200
    return status, response, None


def judge(event: SmokeEvent, response: Any) -> str | None:
    """None if the response is what the event expects, else what is wrong with it."""
    status, body, problem = _answer(event, response)
    if problem:
        return problem
    if status != event.status:
        return f"status {status}, expected {event.status}: {_short(body)}"
    if event.status == 200 and event.recall_probability is not None:
        predictions = body.get("predictions") if isinstance(body, dict) else None
        if not isinstance(predictions, list) or len(predictions) != len(event.recall_probability):
            return f"expected {len(event.recall_probability)} predictions, got {_short(predictions)}"
        for index, (prediction, expected) in enumerate(zip(predictions, event.recall_probability, strict=True)):
            got = prediction.get("recall_probability") if isinstance(prediction, dict) else None
            if not isinstance(got, (int, float)) or abs(got - expected) > event.tolerance:
                return f"wrong answer: recall_probability[{index}] = {got}, expected {expected} ± {event.tolerance}"
    if event.error_field:
        error = body.get("error") if isinstance(body, dict) else None
        field = error.get("field") if isinstance(error, dict) else None
        message = str(error.get("message", "")) if isinstance(error, dict) else ""
        # The field may be qualified (features.item_difficulty, instances[0].delta_days).
        if event.error_field not in str(field or "") and event.error_field not in message:
            return f"the error must name the field {event.error_field!r}, got {_short(error)}"
    return None


def _short(value: Any, limit: int = 300) -> str:
    text = json.dumps(value, default=repr) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[:limit] + "..."


def coverage(ran: list[SmokeEvent], committed_dir: Path, default_tolerance: float) -> dict[str, Any]:
    """Whether a run covered exactly the committed events: a subset (or other events) must not open the gate."""
    try:
        committed = load_events(committed_dir, default_tolerance)
    except PipelineError as exc:
        return {"partial": True, "events_run": [e.name for e in ran], "why": f"committed events unreadable: {exc}"}
    by_name = {event.name: event for event in ran}
    missing = [event.name for event in committed if event.name not in by_name]
    changed = [event.name for event in committed if event.name in by_name and by_name[event.name] != event]
    extra = sorted(set(by_name) - {event.name for event in committed})
    result: dict[str, Any] = {"partial": bool(missing or changed or extra), "events_run": [e.name for e in ran]}
    if result["partial"]:
        result["events_missing"] = missing
        result["events_changed"] = changed
        result["events_not_committed"] = extra
    return result
