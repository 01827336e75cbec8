"""Small, deliberately broken builds for the smoke tests: zips made in the test from a few lines of code.

Most failure classes need no 260 MB layer: a handler module with only the standard library shows
the same Runtime.* errors. Only the cases that need numpy or scikit-learn use the real layer.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

from ci.config import Config, load_config
from ci.paths import REPO_ROOT, BuildPaths
from ci.smoke.events import event_digest, load_events
from ci.smoke.harness import SmokeResult, run_smoke

# The answer the tiny handlers below give for "features" requests.
TINY_PROBABILITY = 0.5

TINY_HANDLER = f"""
import json

def lambda_handler(event, context):
    if "features" not in event and "body" not in event:
        return {{"error": {{"status": 400, "field": "features", "message": "features: missing"}}}}
    body = {{"predictions": [{{"recall_probability": {TINY_PROBABILITY}, "days_until_target": None}}]}}
    if "requestContext" in event:
        return {{"statusCode": 200, "headers": {{"Content-Type": "application/json"}}, "body": json.dumps(body)}}
    return body
"""


def write_zip(path: Path, files: dict[str, str | bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zipped:
        for name, content in files.items():
            zipped.writestr(name, content)
    return path


def function_zip(directory: Path, app_source: str, extra: dict[str, str] | None = None) -> Path:
    """function.zip with handler/app.py = app_source, like the real build's layout."""
    files: dict[str, str | bytes] = {"handler/__init__.py": "", "handler/app.py": app_source, **(extra or {})}
    return write_zip(directory / "function.zip", files)


def layer_zip(directory: Path, files: dict[str, str] | None = None) -> Path:
    """layer.zip with python/<files> (Lambda mounts it at /opt; /opt/python is on sys.path)."""
    return write_zip(directory / "layer.zip", {f"python/{name}": text for name, text in (files or {}).items()})


def write_events(directory: Path, events: dict[str, dict[str, Any]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in events.items():
        (directory / f"{name}.json").write_text(json.dumps(data))
    return directory


def tiny_events(directory: Path) -> Path:
    """A direct, an HTTP API v2 and a bad-input event that TINY_HANDLER answers correctly."""
    features = {"delta_days": 1.0}
    return write_events(
        directory,
        {
            "direct": {
                "description": "one instance, direct invocation",
                "event": {"features": features},
                "expect": {"status": 200},
            },
            "http_v2": {
                "description": "HTTP API v2",
                "event": {
                    "version": "2.0",
                    "routeKey": "POST /predict",
                    "rawPath": "/predict",
                    "requestContext": {"http": {"method": "POST"}},
                    "body": json.dumps({"features": features}),
                },
                "expect": {"status": 200},
            },
            "bad_input": {
                "description": "no features",
                "event": {"instances": []},
                "expect": {"status": 400, "error_field": "features"},
            },
        },
    )


def write_answers(
    manifest: Path, model: Path, events_dir: Path, probabilities: dict[str, float] | float = TINY_PROBABILITY
) -> Path:
    """A model.json as training writes it for `model`: one prediction per 200-event (`probabilities` by name)."""
    by_event: dict[str, Any] = {}
    for event in load_events(events_dir):
        record: dict[str, Any] = {"event_sha256": event_digest(event.event), "status": event.status}
        if event.status == 200:
            p = probabilities if isinstance(probabilities, float) else probabilities[event.name]
            record["predictions"] = [{"recall_probability": p, "recall_unrounded": p, "days_until_target": None}]
        by_event[event.name] = record
    manifest.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
        "versions": {},
        "answers": {"round_off": {"recall_probability": 1e-9, "days_until_target": 0.001}, "by_event": by_event},
    }
    manifest.write_text(json.dumps(data))
    return manifest


def smoke_config(**sections: dict[str, Any]) -> Config:
    """pipeline.toml with overrides; few warm invocations (of the tiny events) keep these tests quick."""
    overrides: dict[str, dict[str, Any]] = {"smoke": {"warm_invocations": 3, "warm_event": ""}}
    for section, values in sections.items():
        overrides.setdefault(section, {}).update(values)
    return load_config(overrides=overrides)


def run_tiny(
    tmp_path: Path,
    app_source: str,
    layer_files: dict[str, str] | None = None,
    events_dir: Path | None = None,
    layer: Path | None = None,
    model: Path | None = None,
    **sections: dict[str, Any],
) -> SmokeResult:
    """Smoke a small function (and by default a small layer) built in tmp_path."""
    model_file = model or tmp_path / "model.joblib"
    if model is None:
        model_file.write_bytes(pickle.dumps({"unused": "by the tiny handlers"}))  # a pickle the scan accepts
    paths = BuildPaths(build=tmp_path / "build", cache=REPO_ROOT / "build" / "cache")
    events = events_dir or tiny_events(tmp_path / "events")
    return run_smoke(
        layer or layer_zip(tmp_path, layer_files),
        function_zip(tmp_path, app_source),
        model_file,
        smoke_config(**sections),
        paths,
        events,
        write_answers(tmp_path / "answers" / "model.json", model_file, events),
    )
