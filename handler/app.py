"""The Lambda entry point: handler.app.lambda_handler.

Bad requests become 400s naming the field; only a broken deployment (a bad environment variable, a model
missing, tampered or unreadable) raises a function error, during the init phase where it can.
"""

from __future__ import annotations

import time
import traceback
from typing import Any

from handler import events, model_store, predict, request, responses, settings, snapstart, telemetry
from handler.errors import ModelLoadError
from handler.settings import SettingsError


def check_settings() -> None:
    """Fail the import on a bad environment variable, with one log line naming each, its value and what is allowed."""
    try:
        settings.check()
    except SettingsError as exc:
        problems = [{"variable": p.name, "value": p.value, "allowed": p.allowed} for p in exc.problems]
        telemetry.log_event("init", level="error", error=str(exc), settings=problems)
        raise


check_settings()
if settings.running_on_lambda():
    # Load and exercise the model during the init phase: cold-start cost (unpickling, the lazy imports
    # of the first predict call) lands in Init Duration, not in the first request.
    predict.warm_up(model_store.get_model())
    # With SnapStart the runtime runs these around the snapshot (a no-op for an on-demand function).
    snapstart.register()


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    started = time.perf_counter()
    request_id = getattr(context, "aws_request_id", None)
    source = events.source_of(event)
    try:
        model = model_store.get_model()
        limits = settings.limits()  # checked at import; fails here only if the environment changed since
    except (ModelLoadError, SettingsError) as exc:  # a broken deployment: a function error, logged too
        telemetry.log_invocation(level="error", request_id=request_id, source=source, status=None, error=str(exc))
        raise
    count = 0
    try:
        answer = request.answer(model, event, limits)
        status, field, body = answer.status, answer.field, answer.body
        count = len(answer.request.instances) if answer.request else 0
    except Exception as exc:  # noqa: BLE001  # a bug must not leak a traceback to the caller; it goes to the log
        status, field = 500, None
        body = responses.error(500, None, "internal error; see the function's log", model.label)
        telemetry.log_invocation(
            level="error", request_id=request_id, error=f"{type(exc).__name__}: {exc}", trace=traceback.format_exc()
        )
    telemetry.log_invocation(
        request_id=request_id,
        source=source,
        status=status,
        error_field=field,
        instances=count,
        latency_ms=round((time.perf_counter() - started) * 1000, 3),
        model_sha256=model.label["sha256"],
    )
    return responses.shape(body, status, source != events.DIRECT)
