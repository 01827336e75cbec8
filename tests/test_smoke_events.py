"""Judging an answer against an event's expectation, and loading the committed events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ci.errors import PipelineError
from ci.smoke.events import SmokeEvent, judge, load_events

HTTP = {"version": "2.0", "rawPath": "/", "requestContext": {"http": {"method": "POST"}}, "body": "{}"}


def event(status: int = 200, probabilities: list[float] | None = None, field: str | None = None) -> SmokeEvent:
    return SmokeEvent("e", "", {"features": {}}, status, probabilities, 0.02, field)


def test_answers_within_tolerance_pass_and_outside_fail() -> None:
    answer = {"predictions": [{"recall_probability": 0.61}, {"recall_probability": 0.2}]}
    assert judge(event(probabilities=[0.6, 0.21]), answer) is None
    assert judge(event(probabilities=[0.6, 0.25]), answer) == (
        "wrong answer: recall_probability[1] = 0.2, expected 0.25 ± 0.02"
    )
    assert judge(event(probabilities=[0.6]), answer).startswith("expected 1 predictions, got")  # type: ignore[union-attr]


def test_a_400_must_name_the_field_plain_or_qualified() -> None:
    error = {"error": {"status": 400, "field": "features.item_difficulty", "message": "must be in [0, 1]"}}
    assert judge(event(400, field="item_difficulty"), error) is None
    assert judge(event(400, field="delta_days"), error) == (
        "the error must name the field 'delta_days', got "
        '{"status": 400, "field": "features.item_difficulty", "message": "must be in [0, 1]"}'
    )
    assert judge(event(200), error).startswith("status 400, expected 200")  # type: ignore[union-attr]


def test_http_events_need_the_http_shape_and_a_json_body() -> None:
    http = SmokeEvent("h", "", HTTP, 200, None, 0.02, None)
    assert http.is_http and not event().is_http
    assert judge(http, {"statusCode": 200, "headers": {}, "body": '{"predictions": []}'}) is None
    assert judge(http, {"statusCode": 200, "body": "<html>"}) == "the HTTP body is not JSON: <html>"
    assert judge(event(), {"statusCode": 200, "body": "{}"}).startswith("a direct invocation got an HTTP-shaped")  # type: ignore[union-attr]


def test_a_malformed_event_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "good.json").write_text(json.dumps({"event": {}, "expect": {"status": 200}}))
    (tmp_path / "broken.json").write_text(json.dumps({"event": {}}))
    with pytest.raises(PipelineError, match=r"smoke event .*broken.json is malformed \(KeyError: 'expect'\)"):
        load_events(tmp_path, 0.02)
    with pytest.raises(PipelineError, match="no smoke events in"):
        load_events(tmp_path / "empty", 0.02)


def test_the_committed_events_load_with_the_default_tolerance(repo_root: Path) -> None:
    events = load_events(repo_root / "tests" / "events", 0.02)
    assert {e.status for e in events} == {200, 400}
    assert any(e.is_http for e in events) and any(not e.is_http for e in events)
    assert all(e.tolerance > 0 for e in events)


def test_the_summary_shows_each_answer_predictions_or_the_field_named() -> None:
    from ci.smoke.summary import answer

    http = {
        "statusCode": 200,
        "body": '{"predictions": [{"recall_probability": 0.8276, "days_until_target": 1.5}], "model": {}}',
    }
    assert answer({"response": http}) == "200 recall [0.828]; days until target [1.5]"
    direct_error = {"error": {"status": 400, "field": "instances[0].delta_days", "message": "must be a finite number"}}
    assert answer({"response": direct_error}) == "400 instances[0].delta_days: must be a finite number"
    assert answer({"response": {"statusCode": 502, "body": "<html>"}}) == "502 (body is not JSON)"
    assert answer({"response": None}) == "no answer"
