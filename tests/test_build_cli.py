"""`python -m ci build` as a user runs it: a configuration mistake named with its fix, before any work."""

from __future__ import annotations

from pathlib import Path

from ci.paths import REPO_ROOT
from tests.conftest import run_cli


def test_an_unknown_rule_fails_with_the_list_of_rules_before_building(tmp_path: Path) -> None:
    config = tmp_path / "pipeline.toml"
    text = (REPO_ROOT / "pipeline.toml").read_text()
    config.write_text(text.replace('prune = ["tests",', 'prune = ["tets",', 1))
    result = run_cli("-m", "ci", "--build-dir", str(tmp_path / "build"), "--config", str(config), "build", check=False)
    assert result.returncode == 2  # configuration
    assert f'error: {config}: [build] prune names "tets" (did you mean tests?)' in result.stderr
    assert "which is not one of tests, docs" in result.stderr
    assert not (tmp_path / "build").exists()  # refused at load: the build never started
