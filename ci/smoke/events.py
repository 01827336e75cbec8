"""The committed smoke events (inputs and expected status), training's answers to them, and judging an answer.
The numbers are training's, not the events' (docs/model.md#answers-training-records)."""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from ci.errors import PipelineError

RETRAIN = "retrain with `python -m training` (`make train`) in the locked environment (`make venv`)"


@dataclass(frozen=True)
class SmokeEvent:
    name: str
    description: str
    event: Any
    status: int
    error_field: str | None

    @property
    def is_http(self) -> bool:  # API Gateway v1 has httpMethod, v2 and Function URLs rawPath/routeKey
        return isinstance(self.event, dict) and any(
            key in self.event for key in ("httpMethod", "rawPath", "routeKey", "requestContext")
        )


def load_events(directory: Path) -> list[SmokeEvent]:
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
            numbers = sorted(set(expect) - {"status", "error_field"})
            if numbers:
                raise PipelineError(
                    f"smoke event {file} expects {', '.join(numbers)}: an event holds its inputs and expected "
                    "status (and error_field) only; the numbers come from training (model.json's answers)",
                    f"remove {', '.join(numbers)} from the event (tests/events/generate.py writes them so)",
                )
            events.append(
                SmokeEvent(
                    name=file.stem,
                    description=str(data.get("description", "")),
                    event=data["event"],
                    status=int(expect["status"]),
                    error_field=expect.get("error_field"),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise PipelineError(
                f"smoke event {file} is malformed ({exc.__class__.__name__}: {exc})",
                'each event needs {"description", "event", "expect": {"status", ...}}',
            ) from exc
    return events


def event_digest(event: Any) -> str:
    """SHA-256 of an event's canonical JSON: training's answers name the inputs they answered."""
    return hashlib.sha256(json.dumps(event, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class TrainingAnswers:
    """model.json's `answers`, for the model whose digest it records (checked when read)."""

    manifest: str  # where they were read, as shown to people
    model_sha256: str
    versions: dict[str, str]  # the training environment's (model.json's `versions`)
    by_event: dict[str, dict[str, Any]]
    probability_round_off: float
    day_step: float
    drift: str = ""  # how the runtime's versions differ from training's, when they do (set by the caller)


def read_answers(manifest: Path, model_sha256: str) -> TrainingAnswers:
    shown = str(manifest)
    try:
        data = json.loads(manifest.read_text())
    except FileNotFoundError as exc:
        raise PipelineError(
            f"{shown} not found: smoke needs training's answers to the committed events", RETRAIN
        ) from exc
    except (OSError, ValueError) as exc:
        raise PipelineError(f"{shown} is not readable JSON ({exc})", RETRAIN) from exc
    recorded = data.get("sha256") if isinstance(data, dict) else None
    if recorded != model_sha256:
        raise PipelineError(
            f"{shown} records answers for model {str(recorded)[:12]}, but the model smoked is {model_sha256[:12]}: "
            "they are another model's numbers",
            RETRAIN + ", which writes model.joblib and model.json together",
        )
    answers = data.get("answers")
    try:
        round_off = answers["round_off"]
        return TrainingAnswers(
            manifest=shown,
            model_sha256=model_sha256,
            versions={str(k): str(v) for k, v in (data.get("versions") or {}).items()},
            by_event=dict(answers["by_event"]),
            probability_round_off=float(round_off["recall_probability"]),
            day_step=float(round_off["days_until_target"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PipelineError(
            f"{shown} holds no answers to the committed events (made by an older `python -m training`)", RETRAIN
        ) from exc


def response_parts(response: Any, http: bool) -> tuple[int | None, Any, str | None]:
    """(status, body dict, problem) of a handler's response to an HTTP event or a direct invocation."""
    if http:
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


def judge(event: SmokeEvent, response: Any, answers: TrainingAnswers | None) -> str | None:
    """What is wrong with the response, or None; `answers` None (a rollback's check) judges its shape only."""
    status, body, problem = response_parts(response, event.is_http)
    if problem:
        return problem
    if status != event.status:
        return f"status {status}, expected {event.status}: {_short(body)}"
    if event.error_field:
        error = body.get("error") if isinstance(body, dict) else None
        field = error.get("field") if isinstance(error, dict) else None
        message = str(error.get("message", "")) if isinstance(error, dict) else ""
        # The field may be qualified (features.item_difficulty, instances[0].delta_days).
        if event.error_field not in str(field or "") and event.error_field not in message:
            return f"the error must name the field {event.error_field!r}, got {_short(error)}"
    if event.status != 200 or answers is None:
        return None
    expected = answers.by_event.get(event.name)
    origin = f"training's answer for model {answers.model_sha256[:12]} ({answers.manifest})"
    if expected is None:
        return f"no {origin} to this event: it was added after training; fix: {RETRAIN}"
    if expected.get("event_sha256") != event_digest(event.event):
        return f"the event changed since {origin} was computed; fix: {RETRAIN}"
    got_all = body.get("predictions") if isinstance(body, dict) else None
    want_all = expected.get("predictions") or []
    if not isinstance(got_all, list) or len(got_all) != len(want_all):
        return f"expected {len(want_all)} predictions ({origin}), got {_short(got_all)}"
    for index, (got, want) in enumerate(zip(got_all, want_all, strict=True)):
        problem = _differs(got if isinstance(got, dict) else {}, want, answers)
        if problem:
            return f"wrong answer: {problem.format(index=index)}, {origin}; fix: {RETRAIN}{answers.drift}"
    return None


def _differs(got: dict[str, Any], want: dict[str, Any], answers: TrainingAnswers) -> str | None:
    """The runtime's prediction against training's, within float64 round-off: docs/model.md#answers-training-records."""
    probability = got.get("recall_probability")
    unrounded = float(want["recall_unrounded"])
    limit = 0.5e-6 + answers.probability_round_off
    if not _number(probability) or abs(probability - unrounded) > limit:
        return (
            f"recall_probability[{{index}}] = {probability}, training computed {want['recall_probability']} "
            f"(unrounded {unrounded!r}, allowed ±{limit:.2g} before rounding)"
        )
    days, want_days = got.get("days_until_target"), want.get("days_until_target")
    if want_days is None:
        return None if days is None else f"days_until_target[{{index}}] = {days}, training computed none"
    low, high = want.get("days_until_target_range") or [want_days, want_days]
    step = answers.day_step + 1e-9
    if not _number(days) or not low - step <= days <= high + step:
        return (
            f"days_until_target[{{index}}] = {days}, training computed {want_days} "
            f"(allowed {low - answers.day_step:.3f} to {high + answers.day_step:.3f})"
        )
    return None


def _number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _short(value: Any, limit: int = 300) -> str:
    text = json.dumps(value, default=repr) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[:limit] + "..."


def coverage(ran: list[SmokeEvent], committed_dir: Path) -> dict[str, Any]:
    """Whether a run covered exactly the committed events: a subset (or other events) must not open the gate."""
    try:
        committed = load_events(committed_dir)
    except PipelineError as exc:
        return {"partial": True, "events_run": [e.name for e in ran], "why": f"committed events unreadable: {exc}"}
    by_name = {event.name: event for event in ran}
    missing = [event.name for event in committed if event.name not in by_name]
    changed = [event.name for event in committed if event.name in by_name and by_name[event.name] != event]
    extra = sorted(set(by_name) - {event.name for event in committed})
    partial = bool(missing or changed or extra)
    details = {"events_missing": missing, "events_changed": changed, "events_not_committed": extra} if partial else {}
    return {"partial": partial, "events_run": [event.name for event in ran], **details}
