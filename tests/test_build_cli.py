"""`python -m ci build` as a user runs it: help, and a configuration mistake named with its fix."""

from __future__ import annotations

import json
from pathlib import Path

from ci.paths import REPO_ROOT
from tests.conftest import run_cli


def test_help_names_the_options() -> None:
    result = run_cli("-m", "ci", "build", "--help")
    assert "--bytecode {runtime,all,none}" in result.stdout and "--compact" in result.stdout


def test_an_unknown_rule_fails_with_the_list_of_rules_and_a_failed_report(tmp_path: Path) -> None:
    config = tmp_path / "pipeline.toml"
    text = (REPO_ROOT / "pipeline.toml").read_text()
    config.write_text(text.replace('prune = ["tests",', 'prune = ["tets",', 1))
    result = run_cli("-m", "ci", "--build-dir", str(tmp_path / "build"), "--config", str(config), "build", check=False)
    assert result.returncode == 1
    assert "error: build.prune in pipeline.toml names unknown rules: tets" in result.stderr
    assert "fix: use any of: tests, docs" in result.stderr
    report = json.loads((tmp_path / "build" / "reports" / "build.json").read_text())
    assert report["passed"] is False and "tets" in report["error"]
