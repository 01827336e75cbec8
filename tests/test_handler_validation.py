"""Bad requests get a 400 naming the field, in every event shape; never a 5xx, never a traceback."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import numpy as np
import pytest

from ci.paths import BuildPaths
from handler import model_store
from handler.app import lambda_handler
from handler.predict import DAY_RESOLUTION, recall
from training.simulator import simulate

GOOD = {"delta_days": 3.0, "history_seen": 6, "history_correct": 4, "history_wrong": 1, "item_difficulty": 0.4}


@pytest.fixture(autouse=True)
def model_env(trained_model: BuildPaths, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_PATH", str(trained_model.model))
    for name in ("MODEL_SHA256", "MODEL_S3_URI", "MAX_BATCH_SIZE", "MAX_BODY_BYTES", "TARGET_HORIZON_DAYS"):
        monkeypatch.delenv(name, raising=False)


def http_v1(body: Any, base64_encoded: bool = False) -> dict[str, Any]:
    return {"httpMethod": "POST", "path": "/", "requestContext": {"stage": "prod"}, "body": body,
            "isBase64Encoded": base64_encoded}  # fmt: skip


def http_v2(body: Any, base64_encoded: bool = False, domain: str = "x.execute-api.us-east-1.amazonaws.com") -> dict:
    return {"version": "2.0", "requestContext": {"http": {"method": "POST"}, "domainName": domain}, "body": body,
            "isBase64Encoded": base64_encoded}  # fmt: skip


def call(event: Any) -> tuple[int, dict[str, Any]]:
    response = lambda_handler(event, None)
    if isinstance(response, dict) and "statusCode" in response:
        return response["statusCode"], json.loads(response["body"])
    return (response["error"]["status"] if "error" in response else 200), response


def rejected(event: Any) -> tuple[str, str]:
    status, body = call(event)
    assert status == 400, body
    assert body["error"]["status"] == 400
    return body["error"]["field"], body["error"]["message"]


# (payload, field, words in the message)
BAD_PAYLOADS = [
    ([GOOD], "body", "must be a JSON object"),
    ("text", "body", "must be a JSON object"),
    ({}, "instances", "missing"),
    ({"instances": GOOD}, "instances", "must be a list"),
    ({"instances": []}, "instances", "is empty"),
    ({"instances": [GOOD, 3]}, "instances[1]", "must be an object"),
    ({"instances": [GOOD], "features": GOOD}, "instances", "not both"),
    ({"instance": [GOOD]}, "instance", "unknown field"),
    (
        {"features": {k: v for k, v in GOOD.items() if k != "history_wrong"}},
        "features.history_wrong",
        "missing feature",
    ),
    ({"features": {**GOOD, "streak": 3}}, "features.streak", "unknown feature"),
    ({"features": {**GOOD, "delta_days": "3"}}, "features.delta_days", "must be a number, got string"),
    ({"features": {**GOOD, "delta_days": True}}, "features.delta_days", "got boolean true"),
    ({"features": {**GOOD, "delta_days": None}}, "features.delta_days", "got null"),
    ({"features": {**GOOD, "delta_days": [3]}}, "features.delta_days", "got a list"),
    ({"features": {**GOOD, "delta_days": math.nan}}, "features.delta_days", "finite"),
    ({"features": {**GOOD, "delta_days": math.inf}}, "features.delta_days", "finite"),
    ({"features": {**GOOD, "item_difficulty": -math.inf}}, "features.item_difficulty", "finite"),
    ({"features": {**GOOD, "delta_days": -0.01}}, "features.delta_days", "must not be negative"),
    ({"features": {**GOOD, "history_seen": -1}}, "features.history_seen", "must not be negative"),
    ({"features": {**GOOD, "history_correct": 2.5}}, "features.history_correct", "whole number"),
    ({"features": {**GOOD, "history_wrong": 3}}, "features.history_correct", "exceeds history_seen"),
    ({"features": {**GOOD, "item_difficulty": 1.2}}, "features.item_difficulty", "between 0 and 1"),
    ({"features": GOOD, "target_recall": 0}, "target_recall", "strictly between 0 and 1"),
    ({"features": GOOD, "target_recall": 1}, "target_recall", "strictly between 0 and 1"),
    ({"features": GOOD, "target_recall": "0.9"}, "target_recall", "must be a number"),
    ({"features": GOOD, "target_recall": math.nan}, "target_recall", "finite"),
    ({"instances": [GOOD, {**GOOD, "history_seen": 10**400}]}, "instances[1].history_seen", "too large"),
]


@pytest.mark.parametrize(("payload", "field", "words"), BAD_PAYLOADS, ids=[c[1] + ":" + c[2] for c in BAD_PAYLOADS])
def test_bad_payload_is_a_400_naming_the_field_in_every_shape(payload: Any, field: str, words: str) -> None:
    body = json.dumps(payload)  # NaN/Infinity are written as JSON's common extension, as clients do
    shapes = [http_v1(body), http_v2(body), http_v2(base64.b64encode(body.encode()).decode(), True, "u.lambda-url.x")]
    if isinstance(payload, dict):
        shapes.append(payload)  # a direct invocation (Lambda only passes objects... or anything JSON)
    for event in shapes:
        got_field, message = rejected(event)
        assert got_field == field, message
        assert words in message


@pytest.mark.parametrize(
    ("event", "words"),
    [
        (http_v1(None), "no body"),
        (http_v1(""), "no body"),
        (http_v1("{'instances': []}"), "not valid JSON"),
        (http_v1('{"instances": [1,'), "not valid JSON"),
        (http_v2("not base64 at all!", True), "not valid base64"),
        (http_v2(base64.b64encode(b"\xff\xfe{").decode(), True), "not UTF-8"),
        (http_v1("[" * 100_000 + "]" * 100_000), "nested too deeply"),
        (http_v1({"instances": [GOOD]}), "must be a string of JSON"),
    ],
)
def test_bad_body_is_a_400_naming_body(event: dict[str, Any], words: str) -> None:
    field, message = rejected(event)
    assert field == "body" and words in message


def test_direct_event_that_is_not_an_object() -> None:
    assert rejected([GOOD])[0] == "body"


def test_batch_limit_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert call({"instances": [GOOD] * 1000})[0] == 200
    field, message = rejected({"instances": [GOOD] * 1001})
    assert field == "instances" and "over the limit of 1000" in message
    monkeypatch.setenv("MAX_BATCH_SIZE", "3")
    assert call({"instances": [GOOD] * 3})[0] == 200
    field, message = rejected(http_v2(json.dumps({"instances": [GOOD] * 4})))
    assert field == "instances" and "over the limit of 3" in message


def test_oversized_body_is_refused_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_BODY_BYTES", "2000")
    body = json.dumps({"instances": [GOOD] * 30})
    assert len(body) > 2000
    for event in (http_v1(body), http_v2(base64.b64encode(body.encode()).decode(), True)):
        field, message = rejected(event)
        assert field == "body" and "over the limit of 2000" in message
    assert call(http_v1(json.dumps({"instances": [GOOD] * 5})))[0] == 200


def test_unexpected_failure_is_a_500_without_traceback(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr("handler.predict.predictions", broken)
    status, body = call(http_v1(json.dumps({"features": GOOD})))
    assert status == 500 and "Traceback" not in json.dumps(body) and "boom" not in json.dumps(body)
    logged = capsys.readouterr().out
    assert "RuntimeError: boom" in logged  # the cause goes to CloudWatch


def check_days_until_target(histories: list[dict[str, Any]], target: float) -> list[float]:
    status, body = call({"instances": histories, "target_recall": target})
    assert status == 200
    model = model_store.get_model()
    column = model.feature_names.index("delta_days")
    rows = np.array([[history[name] for name in model.feature_names] for history in histories], dtype=float)
    days = np.array([prediction["days_until_target"] for prediction in body["predictions"]])
    at, before = rows.copy(), rows.copy()
    at[:, column] = days
    before[:, column] = np.maximum(days - 2 * DAY_RESOLUTION, 0)
    assert (recall(model, at) <= target).all()  # on the returned day, recall has fallen to the target
    assert (recall(model, before)[days > 0] > target).all()  # and not noticeably earlier
    return list(days)


def test_days_until_target_is_consistent_with_the_models_own_predictions() -> None:
    log = simulate(123, learners=50, items=50, reviews=300)
    histories = [{name: row[name] for name in GOOD} for row in log.to_dict("records")]
    histories += [{**GOOD, "delta_days": 0.0}, {**GOOD, "history_seen": 1, "history_correct": 0, "history_wrong": 0}]
    few = check_days_until_target(histories[:3], 0.9)  # small batch: several probes per round
    many = check_days_until_target(histories, 0.9)  # large batch: bisection
    assert few == many[:3]
    looser = check_days_until_target(histories, 0.6)
    # Recall only falls with time, so a stricter target is reached no later.
    assert all(strict <= loose for strict, loose in zip(many, looser, strict=True))
    assert any(day > 0 for day in many)


def test_batch_and_single_predictions_agree() -> None:
    histories = [GOOD, {**GOOD, "history_seen": 2, "history_correct": 1, "history_wrong": 0}]
    _, batch = call({"instances": histories})
    singles = [call({"features": history})[1]["predictions"][0] for history in histories]
    assert batch["predictions"] == singles


def test_days_until_target_is_capped_at_the_horizon(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TARGET_HORIZON_DAYS", "2")
    strong = {**GOOD, "history_seen": 20, "history_correct": 19, "history_wrong": 0, "delta_days": 0.1}
    status, body = call({"features": strong, "target_recall": 0.05})
    assert status == 200 and body["predictions"][0]["days_until_target"] == 2.0
