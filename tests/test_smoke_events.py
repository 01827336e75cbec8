"""Judging an answer against an event's expectation, and loading the committed events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ci.errors import PipelineError
from ci.smoke.events import SmokeEvent, TrainingAnswers, event_digest, judge, load_events, read_answers

HTTP = {"version": "2.0", "rawPath": "/", "requestContext": {"http": {"method": "POST"}}, "body": "{}"}
SHA = "ab" * 32


def event(status: int = 200, field: str | None = None, payload: Any = None) -> SmokeEvent:
    return SmokeEvent("e", "", {"features": {}} if payload is None else payload, status, field)


def answers(*predictions: dict[str, Any], name: str = "e", payload: Any = None) -> TrainingAnswers:
    """Training's record for event `name`, as model.json holds it."""
    record = {"event_sha256": event_digest({"features": {}} if payload is None else payload), "status": 200}
    return TrainingAnswers(
        "build/model/model.json", SHA, {}, {name: {**record, "predictions": list(predictions)}}, 1e-9, 0.001
    )


def trained(probability: float, days: float | None = None, days_range: list[float] | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "recall_probability": round(probability, 6),
        "recall_unrounded": probability,
        "days_until_target": days,
    }
    if days is not None:
        found["days_until_target_range"] = days_range or [days, days]
    return found


def test_the_runtime_must_reproduce_trainings_probabilities_to_round_off() -> None:
    expected = answers(trained(0.61), trained(0.2000004))
    assert (
        judge(event(), {"predictions": [{"recall_probability": 0.61}, {"recall_probability": 0.2}]}, expected) is None
    )
    # 0.7454995 + 1e-12 rounds up on one machine and down on another: both are the same answer
    half = answers(trained(0.7454995))
    assert judge(event(), {"predictions": [{"recall_probability": 0.7455}]}, half) is None
    assert judge(event(), {"predictions": [{"recall_probability": 0.745499}]}, half) is None
    # a model that answers differently (finding 2's 0.667159 against 0.746015) is named with its origin and fix
    problem = judge(event(), {"predictions": [{"recall_probability": 0.667159}]}, answers(trained(0.7460151)))
    assert problem is not None and problem.startswith(
        "wrong answer: recall_probability[0] = 0.667159, training computed 0.746015 (unrounded 0.7460151, "
        "allowed ±5e-07 before rounding), training's answer for model abababababab (build/model/model.json); "
        "fix: retrain with `python -m training` (`make train`) in the locked environment"
    )
    assert judge(event(), {"predictions": [{"recall_probability": 0.61}]}, answers(trained(0.61), trained(0.2))) == (
        "expected 2 predictions (training's answer for model abababababab (build/model/model.json)), got "
        '[{"recall_probability": 0.61}]'
    )


def test_days_until_target_must_match_training_within_one_step() -> None:
    expected = answers(trained(0.7, days=0.7))
    for days, passes in ((0.7, True), (0.701, True), (0.699, True), (0.702, False), (1.4, False), (None, False)):
        problem = judge(event(), {"predictions": [{"recall_probability": 0.7, "days_until_target": days}]}, expected)
        assert (problem is None) == passes, (days, problem)
    late = judge(event(), {"predictions": [{"recall_probability": 0.7, "days_until_target": 0.9}]}, expected)
    assert late is not None and "days_until_target[0] = 0.9, training computed 0.7 (allowed 0.699 to 0.701)" in late
    # a target within round-off of a step of the model's curve: training records both answers
    wide = answers(trained(0.7, days=0.7, days_range=[0.7, 2.5]))
    assert judge(event(), {"predictions": [{"recall_probability": 0.7, "days_until_target": 2.5}]}, wide) is None


def test_an_event_training_did_not_answer_or_answered_before_it_changed_fails_with_the_fix() -> None:
    response = {"predictions": [{"recall_probability": 0.61}]}
    missing = judge(event(), response, answers(trained(0.61), name="other"))
    assert missing is not None and missing.startswith("no training's answer for model abababababab")
    assert "it was added after training; fix: retrain" in missing
    changed = judge(event(payload={"features": {"delta_days": 2}}), response, answers(trained(0.61)))
    assert changed is not None and changed.startswith("the event changed since training's answer for model")


def test_without_answers_only_status_shape_and_field_are_judged() -> None:
    assert judge(event(), {"predictions": [{"recall_probability": 0.99}]}, None) is None


def test_answers_belong_to_exactly_one_model(tmp_path: Path) -> None:
    manifest = tmp_path / "model.json"
    with pytest.raises(PipelineError, match="not found: smoke needs training's answers"):
        read_answers(manifest, SHA)
    manifest.write_text(json.dumps({"sha256": "cd" * 32, "answers": {}}))
    with pytest.raises(PipelineError, match="records answers for model cdcdcdcdcdcd, but the model smoked is abab"):
        read_answers(manifest, SHA)
    manifest.write_text(json.dumps({"sha256": SHA}))
    with pytest.raises(PipelineError, match="holds no answers to the committed events"):
        read_answers(manifest, SHA)


def test_a_400_must_name_the_field_plain_or_qualified() -> None:
    error = {"error": {"status": 400, "field": "features.item_difficulty", "message": "must be in [0, 1]"}}
    assert judge(event(400, field="item_difficulty"), error, None) is None
    assert judge(event(400, field="delta_days"), error, None) == (
        "the error must name the field 'delta_days', got "
        '{"status": 400, "field": "features.item_difficulty", "message": "must be in [0, 1]"}'
    )
    assert judge(event(200), error, None).startswith("status 400, expected 200")  # type: ignore[union-attr]


def test_http_events_need_the_http_shape_and_a_json_body() -> None:
    http = SmokeEvent("h", "", HTTP, 200, None)
    assert http.is_http and not event().is_http
    assert judge(http, {"statusCode": 200, "headers": {}, "body": '{"predictions": []}'}, None) is None
    assert judge(http, {"statusCode": 200, "body": "<html>"}, None) == "the HTTP body is not JSON: <html>"
    assert judge(event(), {"statusCode": 200, "body": "{}"}, None).startswith("a direct invocation got an HTTP-shaped")  # type: ignore[union-attr]


def test_a_malformed_event_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "good.json").write_text(json.dumps({"event": {}, "expect": {"status": 200}}))
    (tmp_path / "broken.json").write_text(json.dumps({"event": {}}))
    with pytest.raises(PipelineError, match=r"smoke event .*broken.json is malformed \(KeyError: 'expect'\)"):
        load_events(tmp_path)
    with pytest.raises(PipelineError, match="no smoke events in"):
        load_events(tmp_path / "empty")


def test_an_event_with_a_number_in_it_is_refused(tmp_path: Path) -> None:
    """Finding 2: numbers in committed events were edited by hand whenever the model changed."""
    (tmp_path / "e.json").write_text(
        json.dumps({"event": {}, "expect": {"status": 200, "recall_probability": [0.7], "tolerance": 0.05}})
    )
    with pytest.raises(PipelineError, match="expects recall_probability, tolerance: an event holds its inputs") as info:
        load_events(tmp_path)
    assert "remove recall_probability, tolerance" in info.value.fix


def test_the_committed_events_hold_inputs_and_expected_status_only(repo_root: Path) -> None:
    files = sorted((repo_root / "tests" / "events").glob("*.json"))
    expects = [json.loads(path.read_text())["expect"] for path in files]
    assert expects and all(set(expect) <= {"status", "error_field"} for expect in expects)
    events = load_events(repo_root / "tests" / "events")
    assert {e.status for e in events} == {200, 400}
    assert any(e.is_http for e in events) and any(not e.is_http for e in events)


def test_the_summary_shows_each_answer_predictions_or_the_field_named() -> None:
    from ci.cmd_smoke import answer

    http = {
        "statusCode": 200,
        "body": '{"predictions": [{"recall_probability": 0.8276, "days_until_target": 1.5}], "model": {}}',
    }
    assert answer({"response": http}) == "200 recall [0.828]; days until target [1.5]"
    direct_error = {"error": {"status": 400, "field": "instances[0].delta_days", "message": "must be a finite number"}}
    assert answer({"response": direct_error}) == "400 instances[0].delta_days: must be a finite number"
    assert answer({"response": {"statusCode": 502, "body": "<html>"}}) == "502 (body is not JSON)"
    assert answer({"response": None}) == "no answer"


def test_a_wrong_number_is_a_finding_on_the_event_whose_fix_is_to_retrain(tmp_path: Path) -> None:
    from ci.cmd_smoke import smoke_findings

    (tmp_path / "e.json").write_text(json.dumps({"event": {}, "expect": {"status": 200}}))
    failure = "event e: wrong answer: recall_probability[0] = 0.9, training computed 0.1; fix: retrain with X"
    [finding] = smoke_findings([failure], [], tmp_path, "handler.app.lambda_handler", tmp_path)
    assert finding.message == "event e: wrong answer: recall_probability[0] = 0.9, training computed 0.1"
    assert finding.fix == "retrain with X" and finding.file == "e.json"
