"""Regenerate the committed events: `.venv/bin/python tests/events/generate.py` (from the repository root).

An event holds its inputs and the expected status (and, for a 400, the field the error names): no
number. The numbers smoke expects are the model's own answers, which `python -m training` computes
through the handler's code and records in model.json; how close the model is to the simulator's true
recall at these histories is the training gate's question (training.max_history_error), not smoke's.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from handler.contract import FEATURE_NAMES as NAMES  # noqa: E402
from training.simulator import REFERENCE_HISTORIES as HISTORIES  # noqa: E402

HERE = Path(__file__).resolve().parent


def features(name: str, **changes: Any) -> dict[str, Any]:
    return {**dict(zip(NAMES, HISTORIES[name], strict=True)), **changes}


def ok() -> dict[str, Any]:
    return {"status": 200}


def bad(field: str) -> dict[str, Any]:
    return {"status": 400, "error_field": field}


def api_gateway_v1(body: str, base64_encoded: bool = False) -> dict[str, Any]:
    return {
        "resource": "/predict",
        "path": "/predict",
        "httpMethod": "POST",
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {"Content-Type": ["application/json"]},
        "queryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/predict",
            "httpMethod": "POST",
            "path": "/prod/predict",
            "stage": "prod",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "identity": {"sourceIp": "203.0.113.10"},
        },
        "body": body,
        "isBase64Encoded": base64_encoded,
    }


def http_v2(body: str, base64_encoded: bool = False, domain: str = "r3pmxmplak.execute-api.us-east-1.amazonaws.com"):
    return {
        "version": "2.0",
        "routeKey": "POST /predict" if "execute-api" in domain else "$default",
        "rawPath": "/predict",
        "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": domain.split(".")[0],
            "domainName": domain,
            "domainPrefix": domain.split(".")[0],
            "http": {"method": "POST", "path": "/predict", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.10"},
            "requestId": "JKJaXmPLvHcESHA=",
            "stage": "$default",
        },
        "body": body,
        "isBase64Encoded": base64_encoded,
    }


def function_url(body: str, base64_encoded: bool = True) -> dict[str, Any]:
    return http_v2(body, base64_encoded, domain="a7xmplk3ysnxtpe5yrs7bjy2mm0ogxcq.lambda-url.us-east-1.on.aws")


def b64(payload: Any) -> str:
    return base64.b64encode(json.dumps(payload).encode()).decode()


EVENTS: dict[str, dict[str, Any]] = {
    "direct-batch": {
        "description": "direct invocation, a batch of four learner histories",
        "event": {"instances": [features(n) for n in ("reviewed_twice", "new_hard_item", "practised", "long_gap")]},
        "expect": ok(),
    },
    "direct-single": {
        "description": "direct invocation, one prediction: what a spaced-repetition app asks most (warm latency)",
        "event": {"features": features("practised")},
        "expect": ok(),
    },
    "direct-single-target": {
        "description": "direct invocation, one instance with a target recall of 0.9 (days_until_target)",
        "event": {"features": features("middling"), "target_recall": 0.9},
        "expect": ok(),
    },
    "apigw-v1": {
        "description": "API Gateway REST API (v1 proxy) event with a JSON body",
        "event": api_gateway_v1(json.dumps({"instances": [features("well_practised"), features("practised")]})),
        "expect": ok(),
    },
    "http-api-v2": {
        "description": "API Gateway HTTP API (payload v2.0) event with a target recall",
        "event": http_v2(json.dumps({"instances": [features("long_gap")], "target_recall": 0.8})),
        "expect": ok(),
    },
    "function-url-base64": {
        "description": "Lambda Function URL event with a base64-encoded body",
        "event": function_url(b64({"features": features("new_hard_item")})),
        "expect": ok(),
    },
    "bad-body-not-json": {
        "description": "API Gateway v1 body that is not JSON",
        "event": api_gateway_v1('{"instances": [ {"delta_days": 1,'),
        "expect": bad("body"),
    },
    "bad-body-not-object": {
        "description": "HTTP API v2 body that is JSON but not an object",
        "event": http_v2("[1, 2, 3]"),
        "expect": bad("body"),
    },
    "bad-invalid-base64": {
        "description": "Function URL event flagged base64 whose body is not base64",
        "event": function_url("this is not base64!!"),
        "expect": bad("body"),
    },
    "bad-missing-feature": {
        "description": "direct batch whose second instance lacks item_difficulty",
        "event": {
            "instances": [
                features("practised"),
                {k: v for k, v in features("middling").items() if k != "item_difficulty"},
            ]
        },
        "expect": bad("instances[1].item_difficulty"),
    },
    "bad-unknown-feature": {
        "description": "direct single instance with a feature the model does not know",
        "event": {"features": features("practised", learner_age=31)},
        "expect": bad("features.learner_age"),
    },
    "bad-string-number": {
        "description": "a count given as a string",
        "event": {"instances": [features("practised", history_seen="6")]},
        "expect": bad("instances[0].history_seen"),
    },
    "bad-null": {
        "description": "null where a number is expected",
        "event": {"features": features("practised", item_difficulty=None)},
        "expect": bad("features.item_difficulty"),
    },
    "bad-boolean": {
        "description": "a boolean where a number is expected",
        "event": {"features": features("practised", history_wrong=True)},
        "expect": bad("features.history_wrong"),
    },
    "bad-nan": {
        "description": "HTTP API v2 body with NaN elapsed time",
        "event": http_v2(json.dumps({"instances": [features("practised", delta_days=float("nan"))]})),
        "expect": bad("instances[0].delta_days"),
    },
    "bad-infinity": {
        "description": "API Gateway v1 body with an infinite difficulty",
        "event": api_gateway_v1(json.dumps({"features": features("practised", item_difficulty=float("inf"))})),
        "expect": bad("features.item_difficulty"),
    },
    "bad-negative-delta": {
        "description": "negative elapsed time",
        "event": {"features": features("practised", delta_days=-2.5)},
        "expect": bad("features.delta_days"),
    },
    "bad-negative-count": {
        "description": "negative count of wrong answers",
        "event": {"instances": [features("practised", history_wrong=-1)]},
        "expect": bad("instances[0].history_wrong"),
    },
    "bad-non-integer-count": {
        "description": "a count that is not a whole number",
        "event": {"instances": [features("practised", history_seen=6.5)]},
        "expect": bad("instances[0].history_seen"),
    },
    "bad-correct-wrong-exceed-seen": {
        "description": "history_correct + history_wrong > history_seen",
        "event": {"instances": [features("practised", history_correct=5, history_wrong=3)]},
        "expect": bad("instances[0].history_correct"),
    },
    "bad-empty-batch": {
        "description": "an empty batch",
        "event": {"instances": []},
        "expect": bad("instances"),
    },
    "bad-batch-over-limit": {
        "description": "1001 instances, over the default limit of 1000 (checked before the instances)",
        "event": {"instances": [{}] * 1001},
        "expect": bad("instances"),
    },
    "bad-huge-integer": {
        "description": "API Gateway v1 body with a 4,301-digit count (past Python's int parsing limit)",
        "event": api_gateway_v1(
            '{"features": {"delta_days": 1.0, "history_seen": ' + "9" * 4301 + ', "history_correct": 1, '
            '"history_wrong": 0, "item_difficulty": 0.3}}'
        ),
        "expect": bad("features.history_seen"),
    },
    "bad-base64-flag-not-boolean": {
        "description": "HTTP API v2 event whose isBase64Encoded is the string 'false', not a boolean",
        "event": {**http_v2(json.dumps({"features": features("practised")})), "isBase64Encoded": "false"},
        "expect": bad("isBase64Encoded"),
    },
    "bad-target-recall": {
        "description": "a target recall outside (0, 1)",
        "event": {"features": features("practised"), "target_recall": 1.5},
        "expect": bad("target_recall"),
    },
}


def main() -> None:
    for old in HERE.glob("*.json"):
        old.unlink()
    for name, content in EVENTS.items():
        text = json.dumps(content, indent=None if name == "bad-batch-over-limit" else 2)
        (HERE / f"{name}.json").write_text(text + "\n")
    print(f"wrote {len(EVENTS)} events to {HERE}")


if __name__ == "__main__":
    main()
