"""Every committed event through handler.app.lambda_handler with the session's model: shapes, values, 400s."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ci.paths import REPO_ROOT, BuildPaths
from handler.app import lambda_handler

EVENTS = sorted((REPO_ROOT / "tests" / "events").glob("*.json"))
HTTP_EVENTS = {"apigw-v1", "http-api-v2", "function-url-base64"}


class Context:
    aws_request_id = "11111111-2222-3333-4444-555555555555"


def reject_constants(name: str) -> float:
    raise ValueError(f"event files must be strict JSON, found {name}")


@pytest.fixture()
def model_env(trained_model: BuildPaths, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    manifest = json.loads(trained_model.model_manifest.read_text())
    monkeypatch.setenv("MODEL_PATH", str(trained_model.model))
    monkeypatch.setenv("MODEL_SHA256", manifest["sha256"])
    for name in ("MODEL_S3_URI", "MAX_BATCH_SIZE", "MAX_BODY_BYTES"):
        monkeypatch.delenv(name, raising=False)
    return manifest


def unwrap(response: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    if "statusCode" in response:
        assert response["headers"]["Content-Type"] == "application/json"
        assert isinstance(response["body"], str)
        return response["statusCode"], json.loads(response["body"], parse_constant=reject_constants)
    body = response
    return (body["error"]["status"] if "error" in body else 200), body


def test_the_event_set_covers_every_shape_and_both_outcomes() -> None:
    names = {path.stem for path in EVENTS}
    assert {"direct-batch", "direct-single-target", *HTTP_EVENTS} <= names
    cases = [json.loads(path.read_text(), parse_constant=reject_constants) for path in EVENTS]
    assert all(set(case) == {"description", "event", "expect"} for case in cases)
    assert sum(case["expect"]["status"] == 400 for case in cases) >= 15


@pytest.mark.parametrize("path", EVENTS, ids=[path.stem for path in EVENTS])
def test_committed_event(path: Path, model_env: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    case = json.loads(path.read_text())
    expect = case["expect"]
    response = lambda_handler(case["event"], Context())
    json.dumps(response, allow_nan=False)  # what Lambda must be able to serialise
    assert ("statusCode" in response) == ("requestContext" in case["event"])  # HTTP events get a proxy response
    status, body = unwrap(response)
    assert status == expect["status"], body
    assert body["model"] == {"sha256": model_env["sha256"][:12], "sklearn_version": "1.3.2"}
    if status == 200:
        probabilities = [prediction["recall_probability"] for prediction in body["predictions"]]
        assert all(type(p) is float and 0.0 <= p <= 1.0 for p in probabilities)
        # Training answered this event through the same code, in this environment: exactly the same answer.
        trained = model_env["answers"]["by_event"][path.stem]["predictions"]
        assert [{k: p[k] for k in ("recall_probability", "days_until_target")} for p in trained] == body["predictions"]
        asks_target = "target_recall" in json.dumps(case["event"])
        for prediction in body["predictions"]:
            days = prediction["days_until_target"]
            assert (type(days) is float and days >= 0) if asks_target else days is None
    else:
        assert body["error"]["field"] == expect["error_field"]
        assert len(body["error"]["message"]) > 10
        assert "Traceback" not in body["error"]["message"]

    log_lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(log_lines) == 1
    line = log_lines[0]
    assert line["request_id"] == Context.aws_request_id
    assert line["status"] == status
    assert line["instances"] == (len(body["predictions"]) if status == 200 else 0)
    assert line["model_sha256"] == model_env["sha256"][:12]
    assert isinstance(line["latency_ms"], float)


def test_committed_events_are_what_the_generator_writes() -> None:
    """Expected values are the simulator's true recall, not hand-edited numbers: regenerate to change them."""
    from tests.events.generate import EVENTS as GENERATED

    assert {path.stem for path in EVENTS} == set(GENERATED)
    for path in EVENTS:
        assert json.loads(path.read_text()) == json.loads(json.dumps(GENERATED[path.stem])), path.name
