"""The two response shapes: a plain dict for direct invocations, a proxy response for HTTP events."""

from __future__ import annotations

import json
from typing import Any

HEADERS = {"Content-Type": "application/json"}


def success(predictions: list[dict[str, Any]], model_label: dict[str, str]) -> dict[str, Any]:
    return {"predictions": predictions, "model": model_label}


def error(status: int, field: str | None, message: str, model_label: dict[str, str] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": {"status": status, "field": field, "message": message}}
    if model_label is not None:
        body["model"] = model_label
    return body


def shape(body: dict[str, Any], status: int, http: bool) -> dict[str, Any]:
    if not http:
        return body
    return {
        "statusCode": status,
        "headers": dict(HEADERS),
        "body": json.dumps(body, allow_nan=False, separators=(",", ":")),
        "isBase64Encoded": False,
    }
