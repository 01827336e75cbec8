"""Deltas against a baseline: another budget.json, or the lock at a git ref."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from budget_fixtures import LAYER_FILES, config_with, make_build

from ci.budget.compute import (
    baseline_from_ref,
    compare,
    compute_budget,
    gather_inputs,
    load_baseline,
    lock_at_ref,
)
from ci.budget.render import Budget, budget_to_dict, write_budget_json
from ci.config import load_config
from ci.errors import PipelineError
from ci.paths import REPO_ROOT, BuildPaths
from ci.units import signed_mb


def budget_of(paths: BuildPaths) -> Budget:
    return compute_budget(gather_inputs(config_with(), paths))


def test_delta_flags_added_removed_and_changed_distributions(tmp_path: Path) -> None:
    before = make_build(tmp_path / "before")
    write_budget_json(before, budget_of(before))
    after_files = {n: v for n, v in LAYER_FILES.items() if "six" not in n}  # six removed
    after_files["python/numpy/core/new_kernel.so"] = 12_345  # numpy grows
    after_files["python/pytz/__init__.py"] = 2_000  # pytz added
    after_files["python/pytz-2026.6.dist-info/METADATA"] = 100
    after = make_build(tmp_path / "after", layer=after_files)
    budget = budget_of(after)

    comparison = compare(budget, load_baseline(before.report("budget")), "main", "before/budget.json")
    rows = {row.name: row for row in comparison.distributions}
    assert rows["six"].status == "removed" and rows["six"].delta_bytes == -1_600
    assert rows["pytz"].status == "added" and rows["pytz"].delta_bytes == 2_100
    assert rows["numpy"].status == "changed" and rows["numpy"].delta_bytes == 12_345
    assert rows["scipy"].status == "unchanged" and rows["scipy"].delta_bytes == 0
    assert comparison.delta_bytes == 12_345 + 2_100 - 1_600 == budget.used_bytes - comparison.before_used_bytes
    assert [row.name for row in comparison.changes] == ["numpy", "pytz", "six"]  # largest change first


def test_a_version_change_of_the_same_size_is_a_change(tmp_path: Path) -> None:
    paths = make_build(tmp_path)
    budget = budget_of(paths)
    baseline = budget_to_dict(budget) | {"format": 1, "check": "budget"}
    baseline["distributions"] = [
        {**row, "version": "1.0.0"} if row["name"] == "scipy" else row for row in baseline["distributions"]
    ]
    rows = {row.name: row for row in compare(budget, baseline, "main", "x").distributions}
    assert rows["scipy"].status == "changed" and rows["scipy"].delta_bytes == 0
    assert (rows["scipy"].before_version, rows["scipy"].after_version) == ("1.0.0", "1.16.3")


def test_the_same_build_compared_with_itself_is_exactly_zero(tmp_path: Path) -> None:
    paths = make_build(tmp_path)
    write_budget_json(paths, budget_of(paths))
    saved = tmp_path / "main-budget.json"
    shutil.copy(paths.report("budget"), saved)
    budget = budget_of(paths)
    budget = dataclasses.replace(budget, comparison=compare(budget, load_baseline(saved), "main", str(saved)))
    assert budget.comparison is not None
    assert budget.comparison.delta_bytes == 0
    assert budget.comparison.changes == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"format": 2, "check": "budget", "used_bytes": 1, "distributions": []}, "report format 2"),
        ({"check": "budget", "used_bytes": 1, "distributions": []}, "report format None"),
        ({"format": 1, "check": "build", "used_bytes": 1, "distributions": []}, "not a budget report"),
        ({"format": 1, "check": "budget", "used_bytes": 1}, "no per-distribution figures"),
        ({"format": 1, "check": "budget", "used_bytes": 1, "distributions": [{"name": "x"}]}, "no per-distribution"),
        ("{not json", "not valid JSON"),
    ],
)
def test_a_baseline_of_another_format_is_refused_by_name(tmp_path: Path, content: object, message: str) -> None:
    baseline = tmp_path / "old-budget.json"
    baseline.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(PipelineError, match=message) as error:
        load_baseline(baseline)
    assert str(baseline) in error.value.problem


def test_a_missing_baseline_is_named(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match=r"baseline .*nope\.json not found"):
        load_baseline(tmp_path / "nope.json")


def _git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"}
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True, env=env)
    return result.stdout.strip()


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    """A git repository with a lock committed on main and changed in the working tree."""
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q", "-b", "main")
    (root / "requirements-layer.txt").write_text("numpy==1.26.4\n")
    _git(root, "add", "requirements-layer.txt")
    _git(root, "commit", "-q", "-m", "lock")
    return root


def test_lock_at_ref_reads_the_committed_lock(repo: Path) -> None:
    (repo / "requirements-layer.txt").write_text("numpy==2.0.0\n")
    sha, lock = lock_at_ref(repo, "main", "requirements-layer.txt")
    assert lock == b"numpy==1.26.4\n"
    assert sha == _git(repo, "rev-parse", "HEAD")


def test_a_ref_that_does_not_exist_is_named(repo: Path) -> None:
    with pytest.raises(PipelineError, match="git ref 'no-such-branch' does not exist") as error:
        lock_at_ref(repo, "no-such-branch", "requirements-layer.txt")
    assert "git fetch" in error.value.fix
    with pytest.raises(PipelineError, match=r"missing\.txt does not exist at main"):
        lock_at_ref(repo, "main", "missing.txt")


def test_an_identical_lock_at_the_ref_reuses_this_builds_figures(repo: Path, tmp_path: Path) -> None:
    config = load_config(root=repo, file=REPO_ROOT / "pipeline.toml")
    paths = make_build(tmp_path / "build")
    current = compute_budget(gather_inputs(config, paths))
    assert current.lock["sha256"]
    figures, source = baseline_from_ref(config, paths, "main", current, False, paths.function_zip)
    assert "identical to this build's lock" in source
    budget = dataclasses.replace(current, comparison=compare(current, {**figures}, "main", source))
    assert budget.comparison is not None and budget.comparison.delta_bytes == 0
    assert not list(paths.build.glob("baseline-*"))  # nothing was built


def test_signed_megabytes_read_like_a_pull_request_comment() -> None:
    assert signed_mb(12_400_000) == "+12.4 MB"
    assert signed_mb(-3_040_000) == "-3.0 MB"
    assert signed_mb(0) == "±0 bytes"
    assert signed_mb(1_234) == "+1,234 bytes"  # small changes never round to zero


def test_the_baseline_build_gets_this_configuration_with_the_refs_lock(tmp_path: Path) -> None:
    from ci.budget.compute import _with_layer_lock

    lock = tmp_path / "baseline" / "requirements-layer.txt"
    derived = _with_layer_lock(REPO_ROOT / "pipeline.toml", lock)
    config = load_config(file=_write(tmp_path / "pipeline.toml", derived))
    original = load_config()
    assert config.lock.layer_lock == lock
    assert config.build == original.build  # same rules
    assert config.target == original.target
    # Everything else is the same configuration, read from another file.
    assert dataclasses.replace(config, file=original.file, lock=original.lock) == original
    assert dataclasses.replace(config.lock, layer_lock=original.lock.layer_lock) == original.lock

    with pytest.raises(PipelineError, match=r"must set lock\.layer_lock exactly once"):
        _with_layer_lock(_write(tmp_path / "bare.toml", "[lock]\n"), lock)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
