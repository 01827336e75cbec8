"""The model's own answers to every committed smoke event, computed through the handler's code.

Smoke requires the Lambda runtime to reproduce them, so smoke judges the runtime and training the model;
what bounds float64 round-off is recorded beside them (docs/model.md#answers-training-records).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ci.errors import PipelineError
from ci.smoke.events import SmokeEvent, event_digest, judge, load_events
from handler import events, predict, request, responses, settings
from handler.model_store import LoadedModel
from training.errors import TrainingError
from training.settings import REPO_ROOT

ROUND_OFF = 1e-9  # far above float64 differences between machines (~1e-15 here), far below any model change


def answer_events(model: LoadedModel, events_dir: Path) -> dict[str, Any]:
    """model.json's `answers`: one record per committed event; refuses a model the events do not fit."""
    try:
        committed = load_events(events_dir)
    except PipelineError as exc:
        raise TrainingError(f"cannot read the committed smoke events: {exc.problem}", exc.fix) from exc
    # The handler's defaults: the function is deployed without MAX_BATCH_SIZE, MAX_BODY_BYTES, TARGET_HORIZON_DAYS.
    limits = settings.Limits(settings.DEFAULT_MAX_BATCH, settings.DEFAULT_MAX_BODY_BYTES, settings.DEFAULT_HORIZON_DAYS)
    records = {event.name: answer_event(model, event, limits) for event in committed}
    shown = events_dir.resolve()
    return {
        "events": str(shown.relative_to(REPO_ROOT) if shown.is_relative_to(REPO_ROOT) else events_dir.name),
        "round_off": {"recall_probability": ROUND_OFF, "days_until_target": predict.DAY_RESOLUTION},
        "by_event": records,
    }


def answer_event(model: LoadedModel, event: SmokeEvent, limits: settings.Limits) -> dict[str, Any]:
    found = request.answer(model, event.event, limits)
    record: dict[str, Any] = {"event_sha256": event_digest(event.event), "status": found.status}
    problem = judge(event, responses.shape(found.body, found.status, found.source != events.DIRECT), None)
    if problem:
        raise TrainingError(
            f"committed event {event.name}: the handler answers it, with this model, not as it expects: {problem}",
            "correct the event (tests/events/generate.py, then regenerate it) or the features (handler/contract.py)",
        )
    if found.status != 200 or found.request is None:
        record["error_field"] = found.field
        return record
    rows = np.asarray(found.request.instances, dtype="float64")
    unrounded = predict.recall(model, rows)
    predictions = []
    for index, prediction in enumerate(found.body["predictions"]):
        entry = {**prediction, "recall_unrounded": float(unrounded[index])}
        predictions.append(entry)
    target = found.request.target_recall
    if target is not None:
        moved = [
            predict.predictions(model, found.request.instances, target + shift, limits.horizon_days)
            for shift in (ROUND_OFF, -ROUND_OFF)  # a higher target is reached sooner
        ]
        for index, entry in enumerate(predictions):
            entry["days_until_target_range"] = [
                moved[0][index]["days_until_target"],
                moved[1][index]["days_until_target"],
            ]
    record["predictions"] = predictions
    return record
