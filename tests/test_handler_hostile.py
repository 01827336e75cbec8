"""Requests written by an attacker, or a careless client: each is a 4xx naming the field, never a 500.

The bodies are raw JSON text, as they arrive over HTTP, because the interesting cases (a 4301-digit
integer, 1e999, a repeated key) cannot be produced by json.dumps from Python values.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from ci.paths import BuildPaths
from handler.app import lambda_handler

GOOD = {"delta_days": 3.0, "history_seen": 6, "history_correct": 4, "history_wrong": 1, "item_difficulty": 0.4}
GOOD_JSON = json.dumps(GOOD)
HUGE = "1" * 4301  # one digit over CPython's int-from-string limit: int() raises ValueError
FUNCTION_URL = "a7xmplk3ysnxtpe5yrs7bjy2mm0ogxcq.lambda-url.us-east-1.on.aws"


@pytest.fixture(autouse=True)
def model_env(trained_model: BuildPaths, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_PATH", str(trained_model.model))
    for name in ("MODEL_SHA256", "MODEL_S3_URI", "MAX_BATCH_SIZE", "MAX_BODY_BYTES", "TARGET_HORIZON_DAYS"):
        monkeypatch.delenv(name, raising=False)


def http_v1(body: Any, **extra: Any) -> dict[str, Any]:
    return {"httpMethod": "POST", "path": "/", "requestContext": {"stage": "prod"}, "body": body, **extra}


def http_v2(body: Any, domain: str = "x.execute-api.us-east-1.amazonaws.com", **extra: Any) -> dict[str, Any]:
    context = {"http": {"method": "POST"}, "domainName": domain}
    return {"version": "2.0", "requestContext": context, "body": body, **extra}


def every_shape(text: str) -> list[dict[str, Any]]:
    """The same raw body as REST v1, HTTP API v2 and a base64-encoded function URL request."""
    encoded = base64.b64encode(text.encode("utf-8")).decode()
    return [
        http_v1(text, isBase64Encoded=False),
        http_v2(text, isBase64Encoded=False),
        http_v2(encoded, FUNCTION_URL, isBase64Encoded=True),
    ]


def call(event: Any) -> tuple[int, dict[str, Any]]:
    response = lambda_handler(event, None)
    json.dumps(response, allow_nan=False)  # what Lambda must be able to serialise
    if "statusCode" in response:
        return response["statusCode"], json.loads(response["body"])
    return (response["error"]["status"] if "error" in response else 200), response


def rejected(event: Any) -> tuple[str, str]:
    """The field and message of a 4xx; fails on any other outcome."""
    status, body = call(event)
    assert 400 <= status < 500, body
    assert body["error"]["status"] == status
    return body["error"]["field"], body["error"]["message"]


def instance(**raw: str) -> str:
    """GOOD as JSON text, with some feature values replaced by raw JSON text."""
    return "{" + ", ".join(f'"{name}": {raw.get(name, json.dumps(value))}' for name, value in GOOD.items()) + "}"


def features(**raw: str) -> str:
    return '{"features": ' + instance(**raw) + "}"


# (raw JSON body, field named, words in the message)
HOSTILE_NUMBERS = [
    (features(history_seen=HUGE), "features.history_seen", "too large"),
    (features(history_seen="-" + HUGE), "features.history_seen", "too large"),
    (features(delta_days="1" * 400), "features.delta_days", "too large"),
    (features(delta_days="1e999"), "features.delta_days", "too large"),
    (features(item_difficulty="-1e999"), "features.item_difficulty", "too large"),
    (features(delta_days="1" * 100_000 + ".5"), "features.delta_days", "too large"),
    (features(delta_days="NaN"), "features.delta_days", "finite"),
    (features(delta_days="Infinity"), "features.delta_days", "finite"),
    (features(history_wrong="-Infinity"), "features.history_wrong", "finite"),
    (f'{{"features": {GOOD_JSON}, "target_recall": {HUGE}}}', "target_recall", "too large"),
    (f'{{"features": {GOOD_JSON}, "target_recall": 1e999}}', "target_recall", "too large"),
    (f'{{"features": {GOOD_JSON}, "target_recall": NaN}}', "target_recall", "finite"),
    (f'{{"instances": [{GOOD_JSON}, {instance(history_seen=HUGE)}]}}', "instances[1].history_seen", "too large"),
    (f'{{"instances": {HUGE}}}', "instances", "must be a list of objects, got the out-of-range number"),
    (f'{{"features": {HUGE}}}', "features", "must be an object of features, got the out-of-range number"),
    (HUGE, "body", "must be a JSON object"),
    ("1e999", "body", "must be a JSON object"),
]


@pytest.mark.parametrize(("text", "field", "words"), HOSTILE_NUMBERS, ids=[c[1] + ":" + c[2] for c in HOSTILE_NUMBERS])
def test_numbers_no_float_holds_are_a_400_naming_the_field(text: str, field: str, words: str) -> None:
    for event in every_shape(text):
        got_field, message = rejected(event)
        assert got_field == field, message
        assert words in message
        assert len(message) < 300  # the 4301 digits are not echoed back


def test_a_huge_integer_in_a_field_that_is_refused_first_is_harmless() -> None:
    field, message = rejected(http_v1(f'{{"features": {GOOD_JSON}, "extra": {HUGE}}}'))
    assert field == "extra" and "unknown field" in message


@pytest.mark.parametrize("flag", ["false", "true", "", 0, 1, None, [], {}], ids=repr)
def test_is_base64_encoded_must_be_a_json_boolean(flag: Any) -> None:
    body = json.dumps({"features": GOOD})
    for event in (http_v1(body, isBase64Encoded=flag), http_v2(body, FUNCTION_URL, isBase64Encoded=flag)):
        field, message = rejected(event)
        assert field == "isBase64Encoded", message
        assert "must be true or false" in message


def test_is_base64_encoded_absent_means_a_plain_body() -> None:
    assert call(http_v1(json.dumps({"features": GOOD})))[0] == 200
    assert call(http_v2(json.dumps({"features": GOOD}), isBase64Encoded=False))[0] == 200


# (raw JSON body, field named): json.loads alone would silently keep the last value
DUPLICATE_KEYS = [
    (f'{{"features": {GOOD_JSON}, "features": {GOOD_JSON}}}', "features"),
    (f'{{"target_recall": 0.5, "features": {GOOD_JSON}, "target_recall": 0.9}}', "target_recall"),
    ('{"features": ' + GOOD_JSON[:-1] + ', "delta_days": 0.0}}', "features.delta_days"),
    (f'{{"instances": [{GOOD_JSON}, {GOOD_JSON[:-1]}, "history_seen": 60}}]}}', "instances[1].history_seen"),
]


@pytest.mark.parametrize(("text", "field"), DUPLICATE_KEYS, ids=[c[1] for c in DUPLICATE_KEYS])
def test_a_repeated_key_is_a_400_naming_it(text: str, field: str) -> None:
    for event in every_shape(text):
        got_field, message = rejected(event)
        assert got_field == field, message
        assert "more than once" in message


def test_a_huge_field_name_is_not_echoed_back_whole() -> None:
    name = "x" * 500_000
    for text in (json.dumps({name: 1}), json.dumps({"features": {**GOOD, name: 1}})):
        status, body = call(http_v1(text))
        assert status == 400
        assert body["error"]["field"].endswith("x" * 64 + "...")
        assert len(json.dumps(body)) < 1000


# (event, words in the message): all name the field `body`
BAD_BODIES = [
    (http_v1(12), "must be a string of JSON, got int"),
    (http_v1(["{}"]), "must be a string of JSON, got list"),
    (http_v1(True), "must be a string of JSON, got bool"),
    (http_v2({"features": GOOD}, isBase64Encoded=True), "must be a string of JSON, got dict"),
    (http_v1("\ufeff" + json.dumps({"features": GOOD})), "not valid JSON"),  # a byte order mark
    (http_v1('{"features": {"delta_days": 1,}}'), "not valid JSON"),
    (http_v1("\ud800"), "not UTF-8"),  # a lone surrogate, as a JSON event can carry in "\ud800"
    (http_v2(base64.b64encode("é".encode("latin-1")).decode(), isBase64Encoded=True), "not UTF-8"),
    (http_v2("e30", isBase64Encoded=True), "not valid base64"),  # missing padding
    (http_v2("e30=\n", isBase64Encoded=True), "not valid base64"),
    (http_v2(base64.urlsafe_b64encode(b'{"a">>>?}').decode(), isBase64Encoded=True), "not valid base64"),
    (http_v1('{"a":' * 100_000 + "1" + "}" * 100_000), "nested too deeply"),
    (http_v1("[" * 200_000), "nested too deeply"),
    (http_v1(" " * 2_000_000), "over the limit"),
    (http_v2("A" * 3_000_000, isBase64Encoded=True), "over the limit"),
]


@pytest.mark.parametrize(("event", "words"), BAD_BODIES, ids=[c[1] for c in BAD_BODIES])
def test_a_malformed_body_is_a_400_naming_body(event: dict[str, Any], words: str) -> None:
    field, message = rejected(event)
    assert field == "body", message
    assert words in message


def test_deep_nesting_inside_a_feature_names_the_feature() -> None:
    field, message = rejected(http_v1(features(delta_days="[" * 500 + "]" * 500)))
    assert field == "features.delta_days" and "got a list" in message


@pytest.mark.parametrize(
    "extra",
    [{}, {"headers": None}, {"headers": "x"}, {"headers": []}, {"headers": {"Content-Type": ["text/plain"]}},
     {"headers": {"content-length": "-1", "content-encoding": "gzip"}}, {"multiValueHeaders": 7}],
    ids=repr,
)  # fmt: skip
def test_headers_are_not_read_so_odd_headers_cannot_break_a_request(extra: dict[str, Any]) -> None:
    body = json.dumps({"features": GOOD})
    assert call(http_v1(body, **extra))[0] == 200
    assert call(http_v2(body, FUNCTION_URL, **extra))[0] == 200


@pytest.mark.parametrize("event", [None, "text", 7, 1.5, True, [], [GOOD]], ids=repr)
def test_a_direct_event_that_is_not_an_object_names_body(event: Any) -> None:
    field, message = rejected(event)
    assert field == "body" and "must be a JSON object" in message
