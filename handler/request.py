"""One request, from the event to the response body, without Lambda: what lambda_handler and training share.

Training answers every committed event through this function with the model it just made (model.json
records the answers), and smoke requires the Lambda runtime to give the same answers: so the numbers
smoke expects are exactly what this code computes, in the training environment, for that model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from handler import events, predict, responses, validation
from handler.errors import RequestError
from handler.model_store import LoadedModel
from handler.settings import Limits


@dataclass(frozen=True)
class Answer:
    status: int
    field: str | None  # the field a 400 names
    body: dict[str, Any]  # unshaped: responses.shape() makes the HTTP proxy response of it
    request: validation.ValidRequest | None  # the validated request, when there was one
    source: str  # the event's shape (events.DIRECT, ...)


def answer(model: LoadedModel, event: Any, limits: Limits) -> Answer:
    """The answer to one event; a bad request is a 400 answer, any other exception propagates (a bug)."""
    source = events.source_of(event)
    try:
        request = events.parse(event, limits.max_body_bytes)
        valid = validation.validate(request.payload, model.feature_names, limits.max_batch)
        found = predict.predictions(model, valid.instances, valid.target_recall, limits.horizon_days)
    except RequestError as exc:
        return Answer(
            exc.status, exc.field, responses.error(exc.status, exc.field, exc.message, model.label), None, source
        )
    return Answer(200, None, responses.success(found, model.label), valid, source)
