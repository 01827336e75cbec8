"""Each failure class of a hand deployment, made with a small broken build, fails the smoke with its cause.

The function runs under the real awslambdaric (pinned like the managed runtime) against the local
Runtime API, exactly as for the real layer; only the code under test is tiny.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest

from tests.config_fixtures import TARGET
from tests.conftest import run_cli
from tests.smoke_fixtures import TINY_HANDLER, function_zip, layer_zip, run_tiny, tiny_events, write_answers

DIST_INFO = {
    "tinylib/__init__.py": "def probability():\n    return 0.5\n",
    "tinylib-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: tiny-lib\nVersion: 1.0\n\n",
    "tinylib-1.0.dist-info/RECORD": "tinylib/__init__.py,,\ntinylib-1.0.dist-info/METADATA,,\n",
    "unused/__init__.py": "",
}


def test_a_working_build_passes_and_reports_timings_memory_and_the_import_trace(tmp_path: Path) -> None:
    app = "import tinylib\n" + TINY_HANDLER
    # The layer build's report names distributions by top-level folder; it wins over dist-info.
    (tmp_path / "build" / "reports").mkdir(parents=True)
    (tmp_path / "build" / "reports" / "build.json").write_text(json.dumps({"top_level": {"unused": "unused-dist"}}))
    result = run_tiny(tmp_path, app, layer_files=DIST_INFO)
    assert result.passed, result.failures
    report = result.report
    assert [event["event"] for event in report["events"]] == ["bad_input", "direct", "http_v2"]
    assert all(event["passed"] for event in report["events"])
    assert report["init"]["state"] == "ready"
    assert 0 < report["init"]["duration_s"] < report["init"]["estimate_at_memory_s"]
    assert report["warm"]["invocations"] == 3 and report["warm"]["event"] == "direct"
    assert 0 < report["warm"]["p50_ms"] <= report["warm"]["p95_ms"] <= report["warm"]["max_ms"]
    assert 0 < report["peak_rss_bytes"] < 512 * 2**20
    trace = report["import_trace"]
    assert trace["files"] == ["python/tinylib/__init__.py"]
    assert trace["distributions"]["tiny-lib"]["imported_files"] == 1
    assert trace["never_imported"] == ["unused-dist"]
    assert trace["distributions"]["unused-dist"] == {
        "imported_files": 0,
        "imported_bytes": 0,
        "shipped_files": 1,
        "shipped_bytes": 0,
    }


def test_the_function_sees_lambdas_sys_path_environment_and_runtime_packages(tmp_path: Path) -> None:
    app = (
        "import json, os, sys, tempfile\nimport boto3, awslambdaric\n"
        "record = {'sys_path': sys.path, 'env': dict(os.environ), 'cwd': os.getcwd(),\n"
        "          'boto3': [boto3.__version__, boto3.__file__], 'flags': [sys.flags.isolated, sys.flags.no_site]}\n"
        "with tempfile.NamedTemporaryFile('w', suffix='.json', delete=False) as out:\n"
        "    json.dump(record, out)\n" + TINY_HANDLER
    )
    result = run_tiny(tmp_path, app)
    assert result.passed, result.failures
    smoke = (tmp_path / "build" / "smoke").resolve()
    [written] = (smoke / "tmp").glob("*.json")  # Lambda's /tmp is writable, and tempfile lands there
    record = json.loads(written.read_text())
    runtime = record["boto3"][1].split("/boto3/")[0]
    places = {"task": smoke / "task", "opt": smoke / "opt", "runtime": runtime, "lang": smoke / "lang"}
    expected = [entry.format(**places) for entry in TARGET.runtime.sys_path]  # the runtime's documented order
    assert record["sys_path"][: len(expected)] == expected
    assert expected[1] == str(smoke / "opt" / "python" / "lib" / f"python{TARGET.runtime.python}" / "site-packages")
    assert not any("site-packages" in e for e in record["sys_path"][len(expected) :]), "host site-packages leaked in"
    assert record["boto3"][0] == "1.38.36" and f"/build/cache/runtime-{TARGET.runtime.name}-" in runtime
    assert record["flags"] == [1, 1]
    assert record["cwd"] == str(smoke / "task")
    env = record["env"]
    assert env["_HANDLER"] == "handler.app.lambda_handler"
    assert env["AWS_EXECUTION_ENV"] == f"AWS_Lambda_{TARGET.runtime.name}"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "512" and env["TZ"] == ":UTC"
    assert env["LAMBDA_TASK_ROOT"] == record["cwd"] and env["AWS_LAMBDA_RUNTIME_API"].startswith("127.0.0.1:")
    assert env["MODEL_PATH"].endswith("/model/model.joblib") and len(env["MODEL_SHA256"]) == 64
    assert "HOME" not in env and "VIRTUAL_ENV" not in env


def test_a_typo_in_the_handler_string_is_runtime_handler_not_found(tmp_path: Path) -> None:
    result = run_tiny(tmp_path, TINY_HANDLER, function={"handler": "handler.app.lambda_handlr"})
    assert not result.passed
    assert result.failures[0].startswith("init error Runtime.HandlerNotFound: Handler 'lambda_handlr' missing")


def test_a_module_missing_from_the_layer_is_runtime_import_module_error(tmp_path: Path) -> None:
    result = run_tiny(tmp_path, "import pandas\n" + TINY_HANDLER)
    assert not result.passed
    assert result.failures[0] == (
        "init error Runtime.ImportModuleError: Unable to import module 'handler.app': No module named 'pandas'"
    )


def test_a_response_json_cannot_encode_is_runtime_marshal_error(tmp_path: Path) -> None:
    app = TINY_HANDLER + "\n_inner = lambda_handler\nlambda_handler = lambda event, context: {'ids': {1, 2}}\n"
    result = run_tiny(tmp_path, app)
    assert not result.passed
    assert (
        "Runtime.MarshalError: Unable to marshal response: Object of type set is not JSON serializable"
        in (result.failures[0])
    )


def test_an_exception_in_the_handler_is_an_unexpected_error(tmp_path: Path) -> None:
    app = TINY_HANDLER + "\ndef lambda_handler(event, context):\n    raise ValueError('boom')\n"
    result = run_tiny(tmp_path, app)
    assert [failure.split(": ", 1)[1] for failure in result.failures] == ["ValueError: boom"] * 3


def test_a_wrong_answer_and_a_wrong_status_are_named(tmp_path: Path) -> None:
    app = TINY_HANDLER.replace("0.5", "0.9").replace('"status": 400', '"status": 422')
    result = run_tiny(tmp_path, app)
    wrong = [failure for failure in result.failures if failure.startswith("event direct: wrong answer:")]
    assert wrong and wrong[0].startswith(
        "event direct: wrong answer: recall_probability[0] = 0.9, training computed 0.5 (unrounded 0.5, allowed ±5e-07"
    )
    assert "training's answer for model" in wrong[0] and "fix: retrain with `python -m training`" in wrong[0]
    assert any(failure.startswith("event bad_input: status 422, expected 400") for failure in result.failures)


def test_init_past_the_init_limit_fails(tmp_path: Path) -> None:
    result = run_tiny(tmp_path, "import time\ntime.sleep(30)\n" + TINY_HANDLER, smoke={"init_limit_s": 1.0})
    assert result.failures == ["init took longer than 1 s (Lambda's init limit, smoke.init_limit_s)"]


def test_an_invocation_past_the_timeout_fails(tmp_path: Path) -> None:
    app = TINY_HANDLER.replace(
        "def lambda_handler(event, context):", "def lambda_handler(event, context):\n    import time; time.sleep(30)"
    )
    result = run_tiny(tmp_path, app, function={"timeout_s": 1})
    assert result.failures == [
        "event bad_input: invocation took longer than the function's timeout (function.timeout_s = 1 s)"
    ]


def test_peak_memory_over_the_configured_size_fails(tmp_path: Path) -> None:
    app = "BALLAST = b'x' * 200_000_000\n" + TINY_HANDLER
    result = run_tiny(tmp_path, app, function={"memory_mb": 128})
    assert len(result.failures) == 1 and result.failures[0].startswith("peak RSS ")
    assert result.failures[0].endswith("MB is over the function's memory (128 MB, function.memory_mb)")


def test_a_write_into_the_package_directory_is_refused_like_lambda_and_reported(tmp_path: Path) -> None:
    app = "from pathlib import Path\nCACHE = Path(__file__).with_name('cache.json')\n" + TINY_HANDLER.replace(
        "def lambda_handler(event, context):", "def lambda_handler(event, context):\n    CACHE.write_text('{}')"
    )
    result = run_tiny(tmp_path, app)
    cache = (tmp_path / "build" / "smoke" / "task" / "handler" / "cache.json").resolve()
    assert "event bad_input: OSError: [Errno 30] Read-only file system: " + repr(str(cache)) in result.failures
    assert result.failures[-1].startswith(
        f"write outside the writable directory: /var/task/handler/cache.json ({cache}, open)"
    )
    assert not cache.exists()


def test_writes_into_the_layer_through_os_and_shutil_are_refused(tmp_path: Path) -> None:
    app = (
        "import os, shutil, sys\n"
        "opt_python = next(p for p in sys.path if p.endswith('/opt/python'))\n"
        "for attempt in (lambda: os.mkdir(opt_python + '/new'),\n"
        "                lambda: os.remove(opt_python + '/tinylib/__init__.py'),\n"
        "                lambda: shutil.rmtree(opt_python + '/unused')):\n"
        "    try:\n        attempt()\n    except OSError as exc:\n        assert exc.errno == 30, exc\n"
        "    else:\n        raise SystemExit('a write to the layer succeeded')\n" + TINY_HANDLER
    )
    result = run_tiny(tmp_path, app, layer_files=DIST_INFO)
    assert [failure.split(" (")[0] for failure in result.failures] == [
        "write outside the writable directory: /opt/python/new",
        "write outside the writable directory: /opt/python/tinylib/__init__.py",
        "write outside the writable directory: /opt/python/unused",
    ]
    assert (tmp_path / "build" / "smoke" / "opt" / "python" / "unused" / "__init__.py").exists()


def test_a_process_that_dies_in_an_invocation_is_runtime_exit_error(tmp_path: Path) -> None:
    signature = "def lambda_handler(event, context):"
    app = TINY_HANDLER.replace(signature, signature + "\n    import os; print('bye', flush=True); os._exit(3)")
    result = run_tiny(tmp_path, app)
    assert len(result.failures) == 1
    assert result.failures[0].startswith(
        "event bad_input: Runtime.ExitError: the function's process exited (code 3) during the invocation:"
    )
    assert result.failures[0].endswith("bye")


def test_init_that_would_be_slow_at_the_configured_memory_is_warned_about_as_an_estimate(tmp_path: Path) -> None:
    app = "import time\ntime.sleep(0.5)\n" + TINY_HANDLER
    result = run_tiny(tmp_path, app, function={"memory_mb": 128}, smoke={"init_limit_s": 5.0})
    assert result.passed, result.failures
    init = result.report["init"]
    assert init["estimate_at_memory_s"] == pytest.approx(init["duration_s"] * 1769 / 128, abs=0.01)
    assert result.report["warnings"][0].startswith("estimated init at 128 MB (")
    assert "over Lambda's 5 s init limit: an estimate" in result.report["warnings"][0]


def test_nothing_is_left_read_only_after_a_run(tmp_path: Path) -> None:
    result = run_tiny(tmp_path, TINY_HANDLER, layer_files=DIST_INFO)
    assert result.passed, result.failures
    for directory in ("opt", "task", "model"):
        assert os.access(tmp_path / "build" / "smoke" / directory, os.W_OK)


def test_an_http_event_answered_like_a_direct_invocation_is_named(tmp_path: Path) -> None:
    app = TINY_HANDLER.replace('if "requestContext" in event:', "if False:")
    result = run_tiny(tmp_path, app)
    assert result.failures == [
        (
            "event http_v2: an HTTP event must get {statusCode, headers, body}, got "
            '{"predictions": [{"recall_probability": 0.5, "days_until_target": null}]}'
        )
    ]


def test_the_command_prints_the_cause_writes_the_report_and_exits_non_zero(tmp_path: Path) -> None:
    model = tmp_path / "model.joblib"
    model.write_bytes(pickle.dumps("unused"))
    events = tiny_events(tmp_path / "ev")
    write_answers(tmp_path / "model.json", model, events)  # next to --model: where smoke looks by default
    args = ["--layer", str(layer_zip(tmp_path)), "--model", str(model), "--events", str(events)]
    args += ["--function", str(function_zip(tmp_path, TINY_HANDLER.replace("lambda_handler", "handle")))]
    result = run_cli("-m", "ci", "--build-dir", str(tmp_path / "build"), "smoke", *args, check=False)
    assert result.returncode == 1
    assert "FAILED: init error Runtime.HandlerNotFound: Handler 'lambda_handler' missing on module 'handler.app'" in (
        result.stdout
    )
    # Other files than the build's: judged into smoke-adhoc.json, never into the smoke.json deploy trusts.
    assert not (tmp_path / "build" / "reports" / "smoke.json").exists()
    report = json.loads((tmp_path / "build" / "reports" / "smoke-adhoc.json").read_text())
    assert report["check"] == "smoke-adhoc" and report["passed"] is False
    assert report["init"]["error"]["errorType"] == "Runtime.HandlerNotFound"
    [error] = [f for f in report["findings"] if f["severity"] == "error"]
    assert error["file"] == "handler/app.py" and error["message"].startswith("init error Runtime.HandlerNotFound")
    assert set(report["artifacts"]) == {"layer.zip", "function.zip", "model.joblib", "model.json"}
    # pipeline.toml's smoke.warm_event names a committed event, not one of these: said, not fatal.
    assert any("smoke.warm_event" in warning for warning in report["warnings"])
