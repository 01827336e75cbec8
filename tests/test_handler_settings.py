"""A bad environment variable fails the init phase with one log line, instead of making every request a 500."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from ci.paths import REPO_ROOT, BuildPaths
from handler import settings

VARIABLES = ("MODEL_SHA256", "MODEL_S3_URI", "MAX_BATCH_SIZE", "MAX_BODY_BYTES", "TARGET_HORIZON_DAYS", "MODEL_THREADS")

# (variable, value, words of what is allowed)
BAD = [
    ("MAX_BATCH_SIZE", "abc", "whole number from 1 to 100000"),
    ("MAX_BATCH_SIZE", "0", "whole number from 1 to 100000"),
    ("MAX_BATCH_SIZE", "-5", "whole number from 1 to 100000"),
    ("MAX_BATCH_SIZE", "2.5", "whole number from 1 to 100000"),
    ("MAX_BATCH_SIZE", "1_000", "whole number from 1 to 100000"),
    ("MAX_BATCH_SIZE", "9" * 5000, "whole number from 1 to 100000"),
    ("MAX_BODY_BYTES", "10MB", "whole number from 1 to 6291456"),
    ("MAX_BODY_BYTES", "7000000", "whole number from 1 to 6291456"),
    ("TARGET_HORIZON_DAYS", "1" * 400, "whole number from 1 to 36500"),
    ("TARGET_HORIZON_DAYS", "inf", "whole number from 1 to 36500"),
    ("MODEL_THREADS", "0", "whole number from 1 to 64"),
    ("MODEL_SHA256", "not-a-digest", "64 hexadecimal digits"),
    ("MODEL_SHA256", "ab" * 31, "64 hexadecimal digits"),
    ("MODEL_S3_URI", "https://bucket/model.joblib", "s3://bucket/key"),
    ("MODEL_S3_URI", "s3://bucket/", "s3://bucket/key"),
]
BAD_IDS = [f"{name}={value[:12]}" for name, value, _ in BAD]


@pytest.fixture()
def clean_env(trained_model: BuildPaths, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment of a local run with the session's model and no handler variables set."""
    for name in (*VARIABLES, "_HANDLER", "PYTHONPATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MODEL_PATH", str(trained_model.model))
    return dict(os.environ)


def import_app(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter importing the handler module, as the runtime does in the init phase."""
    return subprocess.run(
        [sys.executable, "-c", "import handler.app"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def init_lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


@pytest.mark.parametrize(("name", "value", "allowed"), BAD, ids=BAD_IDS)
def test_a_bad_variable_fails_the_import_with_one_line_naming_it(
    clean_env: dict[str, str], name: str, value: str, allowed: str
) -> None:
    result = import_app({**clean_env, name: value})
    assert result.returncode != 0, result.stdout
    (line,) = init_lines(result.stdout)  # exactly one line, and it is JSON
    assert line["event"] == "init" and line["level"] == "error"
    shown = value if len(value) <= 80 else value[:80] + "..."
    (problem,) = line["settings"]
    assert problem["variable"] == name and problem["value"] == shown and allowed in problem["allowed"]
    assert f"{name}={shown!r}" in line["error"] and allowed in line["error"]
    assert f"SettingsError: {line['error']}" in result.stderr  # the runtime reports the same as the init error


def test_every_bad_variable_is_named_in_the_one_line(clean_env: dict[str, str]) -> None:
    bad = {"MAX_BATCH_SIZE": "lots", "MODEL_THREADS": "-1", "MODEL_SHA256": "xyz"}
    result = import_app({**clean_env, **bad})
    assert result.returncode != 0
    (line,) = init_lines(result.stdout)
    assert {problem["variable"]: problem["value"] for problem in line["settings"]} == bad


def test_good_values_import_quietly(clean_env: dict[str, str]) -> None:
    good = {
        "MAX_BATCH_SIZE": " 50 ",
        "MAX_BODY_BYTES": "6291456",
        "TARGET_HORIZON_DAYS": "36500",
        "MODEL_THREADS": "",
        "MODEL_SHA256": "AB" * 32,
        "MODEL_S3_URI": "s3://bucket/models/v1/model.joblib",
    }
    result = import_app({**clean_env, **good})
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


def test_values_are_read_stripped_and_blank_means_the_default(
    clean_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_BATCH_SIZE", " 50\n")
    monkeypatch.setenv("MAX_BODY_BYTES", "   ")
    monkeypatch.setenv("MODEL_SHA256", " " + "AB" * 32 + " ")
    assert settings.limits() == settings.Limits(50, settings.DEFAULT_MAX_BODY_BYTES, settings.DEFAULT_HORIZON_DAYS)
    assert settings.model_source().sha256 == "ab" * 32
    settings.check()


def test_a_variable_broken_after_init_is_a_logged_function_error_not_a_500(
    clean_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Lambda never changes the environment of a running container; if it did, the caller is not to blame."""
    from handler.app import lambda_handler
    from handler.settings import SettingsError

    monkeypatch.setenv("MAX_BATCH_SIZE", "abc")
    with pytest.raises(SettingsError, match="MAX_BATCH_SIZE='abc' is not allowed"):
        lambda_handler({"features": {}}, None)
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["level"] == "error" and "MAX_BATCH_SIZE='abc'" in line["error"]
