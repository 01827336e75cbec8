"""Turn a payload into checked numeric instances, or a RequestError naming the first bad field.

Rules per feature follow its kind in handler/contract.py; repeated keys and numbers too large for a float are
refused by name, never guessed at (the rules: docs/handler.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from handler.contract import CORRECT, COUNTS, ELAPSED, SEEN, UNIT_INTERVAL, WRONG
from handler.errors import RequestError

TOP_LEVEL = {"instances", "features", "target_recall"}
FLOAT_DIGITS = 309  # digits of the largest float, 1.8e308: a longer integer cannot be a feature
SHOWN_CHARS = 64  # a field name is echoed in the error only up to this length


class OutOfRange:
    """A JSON number no float holds (an integer of 310+ digits, 1e999), kept short so errors can quote it."""

    def __init__(self, text: str) -> None:
        self.shown = text if len(text) <= 24 else f"{text[:10]}...{text[-10:]} ({len(text)} characters)"


class DuplicateKeys(dict[str, Any]):
    """A JSON object in which some keys repeat: which value the client meant is unknowable."""

    def __init__(self, pairs: dict[str, Any], repeated: list[str]) -> None:
        super().__init__(pairs)
        self.repeated = repeated


@dataclass(frozen=True)
class ValidRequest:
    instances: list[list[float]]  # one row per instance, in the model's feature order
    target_recall: float | None


def validate(payload: Any, feature_names: list[str], max_batch: int) -> ValidRequest:
    if not isinstance(payload, dict):
        raise RequestError("body", f'must be a JSON object such as {{"instances": [...]}}, got {kind(payload)}')
    unique(payload, "")
    unknown = sorted(str(key) for key in payload if key not in TOP_LEVEL)
    if unknown:
        raise RequestError(shown(unknown[0]), f"unknown field; allowed: {', '.join(sorted(TOP_LEVEL))}")
    if "instances" in payload and "features" in payload:
        raise RequestError("instances", 'give either "instances" (a batch) or "features" (one instance), not both')
    if "features" in payload:
        rows = [instance(payload["features"], "features", feature_names)]
    elif "instances" in payload:
        rows = batch(payload["instances"], feature_names, max_batch)
    else:
        raise RequestError("instances", 'missing: send {"instances": [{...}, ...]} or {"features": {...}}')
    return ValidRequest(rows, target(payload.get("target_recall")))


def batch(value: Any, feature_names: list[str], max_batch: int) -> list[list[float]]:
    if not isinstance(value, list):
        raise RequestError("instances", f"must be a list of objects, got {kind(value)}")
    if not value:
        raise RequestError("instances", "is empty: send at least one instance")
    if len(value) > max_batch:
        raise RequestError(
            "instances", f"has {len(value)} instances, over the limit of {max_batch} per request (MAX_BATCH_SIZE)"
        )
    return [instance(item, f"instances[{index}]", feature_names) for index, item in enumerate(value)]


def instance(value: Any, where: str, feature_names: list[str]) -> list[float]:
    if not isinstance(value, dict):
        raise RequestError(where, f"must be an object of features, got {kind(value)}")
    unique(value, f"{where}.")
    for name in value:
        if name not in feature_names:
            raise RequestError(f"{where}.{shown(name)}", f"unknown feature; expected: {', '.join(feature_names)}")
    for name in feature_names:
        if name not in value:
            raise RequestError(f"{where}.{name}", f"missing feature; expected: {', '.join(feature_names)}")
    numbers = {name: feature(value[name], f"{where}.{name}", name) for name in feature_names}
    if numbers.keys() >= COUNTS and numbers[CORRECT] + numbers[WRONG] > numbers[SEEN]:
        raise RequestError(
            f"{where}.{CORRECT}",
            f"{CORRECT} ({numbers[CORRECT]:g}) + {WRONG} ({numbers[WRONG]:g}) exceeds {SEEN} ({numbers[SEEN]:g})",
        )
    return [numbers[name] for name in feature_names]


def feature(value: Any, field: str, name: str) -> float:
    number = finite_number(value, field)
    if name in COUNTS:
        if not number.is_integer():
            raise RequestError(field, f"must be a whole number of reviews, got {number!r}")
        if number < 0:
            raise RequestError(field, f"must not be negative, got {number:g}")
    elif name == ELAPSED and number < 0:
        raise RequestError(field, f"elapsed time must not be negative, got {number!r} days")
    elif name in UNIT_INTERVAL and not 0.0 <= number <= 1.0:
        raise RequestError(field, f"must be between 0 and 1, got {number!r}")
    return number


def target(value: Any) -> float | None:
    if value is None:
        return None
    number = finite_number(value, "target_recall")
    if not 0.0 < number < 1.0:
        raise RequestError("target_recall", f"must be a probability strictly between 0 and 1, got {number!r}")
    return number


def unique(value: dict[str, Any], prefix: str) -> None:
    if isinstance(value, DuplicateKeys):
        raise RequestError(prefix + shown(value.repeated[0]), "appears more than once in the object; send it once")


def finite_number(value: Any, field: str) -> float:
    if isinstance(value, OutOfRange):
        raise RequestError(field, f"is too large to be a number of this kind: {value.shown}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(field, f"must be a number, got {kind(value)}")
    try:
        number = float(value)
    except OverflowError as exc:
        raise RequestError(field, "is too large to be a number of this kind") from exc
    if not math.isfinite(number):
        raise RequestError(field, f"must be a finite number, got {number!r}")
    return number


def shown(name: str) -> str:
    """A field name as echoed in errors and logs: the caller may have sent a megabyte-long key."""
    return name if len(name) <= SHOWN_CHARS else name[:SHOWN_CHARS] + "..."


def kind(value: Any) -> str:
    """What the caller sent instead, in a few words."""
    if isinstance(value, OutOfRange):
        return f"the out-of-range number {value.shown}"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"string {value[:40]!r}"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__
