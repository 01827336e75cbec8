"""`make bench-ci`: its timing of each pipeline command, its table and its report (the real run is `make bench-ci`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ci.bench import CI_TARGETS, clean_env, render_ci_table, run_timed
from ci.paths import BuildPaths
from ci.reports import write_report

SCRIPT = """
import sys, time
print(".venv/bin/python -m ci first", flush=True); time.sleep(0.2)
print("some output", flush=True)
print(".venv/bin/python -m ci second", flush=True); time.sleep(1.5)
sys.exit(3)
"""


def test_each_command_is_timed_from_its_line_to_the_next(tmp_path: Path) -> None:
    timed = run_timed([sys.executable, "-c", SCRIPT], tmp_path, clean_env(), step_prefix=".venv/bin/python -m")
    assert timed.returncode == 3 and "some output" in timed.tail
    assert list(timed.steps) == ["ci first", "ci second"]
    # A step is timed from the moment its line is read. On a busy machine a read can be late by a few hundred
    # ms (CI saw 250 ms), so the two sleeps differ by far more than that and each bound leaves 500 ms for it.
    first, second = timed.steps["ci first"], timed.steps["ci second"]
    assert second > first and second >= 1.5 - 0.5
    assert first + second >= 1.7 - 0.5
    assert timed.seconds >= sum(timed.steps.values())


def test_a_clone_runs_its_own_venv_not_the_benchs() -> None:
    env = clean_env()
    assert "VIRTUAL_ENV" not in env and "MAKEFLAGS" not in env
    assert not [p for p in env["PATH"].split(":") if p.endswith("/.venv/bin")]


def result(seconds: float) -> dict[str, object]:
    return {
        "commit": "0123456789abcdef",
        "load_average": {"start": [1.5, 1.2, 1.0], "end": [1.9, 1.4, 1.1]},
        "cpus": 2,
        "targets": {"venv_warm_s": CI_TARGETS["venv_warm_s"]},
        "rows": [
            {"measurement": "make venv, warm", "seconds": seconds, "target_s": 10.0, "met": seconds <= 10, "note": ""},
            {"measurement": "  ci abi", "seconds": 4.2, "target_s": None, "met": None, "note": ""},
        ],
    }


def test_the_table_names_each_target_and_whether_it_was_met_and_the_load() -> None:
    text = render_ci_table(result(1.0))
    assert "make venv, warm" in text and "<= 10 s" in text and "met" in text
    assert "load average" in text and "[1.5, 1.2, 1.0]" in text and "2 CPUs" in text
    assert "MISSED" in render_ci_table(result(12.5))


def test_the_report_follows_the_contract(tmp_path: Path) -> None:
    paths = BuildPaths(build=tmp_path / "build", cache=tmp_path / "cache")
    report = json.loads(write_report(paths, "bench-ci", True, result(1.0)).read_text())
    assert report["check"] == "bench-ci" and report["passed"] is True and report["rows"][0]["met"] is True
