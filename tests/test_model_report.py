"""`python -m ci model-report`: this checkout's model against the base branch's, trained from the base's code.

A copy of this repository becomes a small git history (main, then a branch that changes training), and
the command runs in it as a person runs it: the base is found by git, trained by `python -m training`
from its own tree, compared with real models, drawn as mermaid; a base it cannot build is one line.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ci.model_report import DAYS, UNAVAILABLE, BaseUnavailableError, base_model, resolve
from ci.paths import REPO_ROOT, BuildPaths
from tests.conftest import run_cli

MERMAID = re.compile(r"```mermaid\n(.*?)```", re.DOTALL)
SKIPPED = ("docs/", "tests/")  # what training and `python -m ci` never read (tests/events is kept)


def git(repo: Path, *args: str) -> str:
    ran = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return ran.stdout.strip()


def ci(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m ci` of the copy, run from it (its own ci/ and training/ first on sys.path)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GITHUB_ACTIONS")}
    return subprocess.run([sys.executable, "-m", "ci", *args], cwd=repo, capture_output=True, text=True, env=env)


def train(repo: Path, out_dir: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    ran = subprocess.run(
        [sys.executable, "-m", "training", "--out-dir", str(out_dir)], cwd=repo, capture_output=True, text=True, env=env
    )
    assert ran.returncode == 0, ran.stderr
    manifest: dict[str, Any] = json.loads((out_dir / "model.json").read_text())
    return manifest


def set_seed(repo: Path, seed: int) -> None:
    config = repo / "pipeline.toml"
    text, count = re.subn(r"(?m)^seed = \d+", f"seed = {seed}", config.read_text())
    assert count == 1
    config.write_text(text)


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    """This checkout's files (not docs or tests but the events) committed as `main` of a new repository."""
    listed = git(REPO_ROOT, "ls-files", "--cached", "--others", "--exclude-standard").splitlines()
    copy = tmp_path / "repo"
    for name in listed:
        source = REPO_ROOT / name
        if (name.startswith(SKIPPED) and not name.startswith("tests/events/")) or not source.is_file():
            continue
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, copy / name)
    git(copy, "init", "--quiet", "--initial-branch=main")
    git(copy, "add", "--all")
    git(copy, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "--quiet", "-m", "base")
    return copy


def commit(repo: Path, message: str) -> None:
    git(repo, "add", "--all")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "--quiet", "-m", message)


def report_of(repo: Path) -> tuple[dict[str, Any], str]:
    reports = repo / "build" / "reports"
    return json.loads((reports / "model-report.json").read_text()), (reports / "model-report.md").read_text()


def test_a_change_to_training_is_compared_with_the_base_trained_from_its_own_code(
    repo: Path, trained_model: BuildPaths
) -> None:
    git(repo, "switch", "--quiet", "-c", "change")
    set_seed(repo, 7)  # the data scientist's change: another seed, so other data and other trees
    commit(repo, "training: seed 7")
    head = train(repo, repo / "build" / "model")

    ran = ci(repo, "model-report")
    assert ran.returncode == 0, ran.stderr
    report, markdown = report_of(repo)
    base_commit = git(repo, "rev-parse", "main")
    assert report["base"]["status"] == "trained"
    assert report["base"]["commit"] == base_commit
    assert report["base"]["chosen_by"] == "the merge-base of HEAD and main"
    # The base was trained from main's pipeline.toml (the default seed): its metrics are the default model's.
    default = json.loads(trained_model.model_manifest.read_text())
    base = json.loads((repo / "build" / "model-base" / base_commit[:12] / "model" / "model.json").read_text())
    assert base["metrics"] == default["metrics"]
    assert base["seed"] == default["seed"] != head["seed"]

    rows = {row["key"]: row for row in report["metrics"]}
    assert set(rows) == {"log_loss", "roc_auc", "mae_true_p", "ece"}
    for key, row in rows.items():
        assert (row["base"], row["head"]) == (base["metrics"][key], head["metrics"][key])
        assert row["delta"] == round(head["metrics"][key] - base["metrics"][key], 6)
        lower_is_better = key != "roc_auc"
        assert row["verdict"] == ("better" if (row["delta"] < 0) == lower_is_better else "worse")
    assert rows["ece"]["gate"] == "<= 0.05" and rows["roc_auc"]["gate"] == ">= 0.7"
    assert rows["log_loss"]["limit"] == round(0.85 * head["metrics"]["baseline_log_loss"], 6)
    assert f"| ROC AUC | {base['metrics']['roc_auc']:.4f} | {head['metrics']['roc_auc']:.4f} |" in markdown
    checks = [f"✅ passed (0 violation(s) in {m['checks']['monotonic']['histories']} histories)" for m in (base, head)]
    assert f"| monotonic in elapsed days | {checks[0]} | {checks[1]} |" in markdown  # as each model.json records

    charts = MERMAID.findall(markdown)
    assert len(charts) == len(report["curves"]["histories"]) >= 2
    for chart, history in zip(charts, report["curves"]["histories"], strict=True):
        assert_xychart(chart, series=2)
        assert history["base"] != history["head"], "two models, two curves"
    # A second run reuses the base model it trained (same commit, same libraries) instead of training again.
    again = ci(repo, "model-report")
    assert again.returncode == 0, again.stderr
    assert report_of(repo)[0]["base"]["status"] == "reused"


def assert_xychart(chart: str, series: int) -> None:
    """Well-formed for mermaid's xychart-beta: init line, header, axes, `series` lines of one value per day."""
    lines = chart.strip().splitlines()
    init = json.loads(lines[0].removeprefix("%%{init: ").removesuffix("}%%"))
    palette = init["themeVariables"]["xyChart"]["plotColorPalette"].split(", ")
    assert lines[1] == "xychart-beta"
    assert re.fullmatch(r'    title "[^"]+"', lines[2])
    days = re.fullmatch(r'    x-axis "[^"]+" \[([0-9, ]+)\]', lines[3])
    assert days and [int(d) for d in days.group(1).split(", ")] == list(DAYS)
    assert re.fullmatch(r'    y-axis "p\(recall\)" [01]\.\d --> 1', lines[4])
    plotted = [re.fullmatch(r"    line \[([0-9., ]+)\]", line) for line in lines[5:]]
    assert len(plotted) == series == len(palette) and all(plotted)
    for match in plotted:
        assert match is not None
        values = [float(v) for v in match.group(1).split(", ")]
        assert len(values) == len(DAYS) and all(0 <= v <= 1 for v in values)


def test_unchanged_training_inputs_reuse_the_head_model_without_training(repo: Path, trained_model: BuildPaths) -> None:
    git(repo, "switch", "--quiet", "-c", "handler-only")
    (repo / "handler" / "telemetry.py").write_text((repo / "handler" / "telemetry.py").read_text() + "\n# edited\n")
    commit(repo, "handler: a change that does not touch the model")
    shutil.copytree(trained_model.model_dir, repo / "build" / "model")

    ran = ci(repo, "model-report")
    assert ran.returncode == 0, ran.stderr
    report, markdown = report_of(repo)
    main = git(repo, "rev-parse", "main")
    assert report["base"]["status"] == "unchanged"
    assert f"**Model unchanged from `main` ({main[:7]})**: the training inputs are identical" in markdown
    assert not (repo / "build" / "model-base" / main[:12] / "model").exists(), "nothing was trained"
    assert all(row["delta"] == 0 and row["verdict"] == "same" for row in report["metrics"])
    for chart in MERMAID.findall(markdown):
        assert_xychart(chart, series=1)  # the base's curve is the head's: drawn once


def test_a_base_that_cannot_be_built_is_one_line_and_exit_0(repo: Path, trained_model: BuildPaths) -> None:
    shutil.copytree(trained_model.model_dir, repo / "build" / "model")
    ran = ci(repo, "model-report", "--base-ref", "origin/release")
    assert ran.returncode == 0, ran.stderr
    report, markdown = report_of(repo)
    assert report["base"]["status"] == UNAVAILABLE
    [line] = [line for line in markdown.splitlines() if "base not built" in line]
    assert "base ref 'origin/release' is not in this clone" in line and "fetch-depth: 0" in line
    assert report["passed"] is True
    assert [f["severity"] for f in report["findings"]] == ["warning"]  # annotated, never failing
    assert "| ROC AUC | " in markdown, "this model's metrics and gate are still shown"


def test_base_resolution_without_git_history(repo: Path, tmp_path: Path) -> None:
    watched = ["training", "pipeline.toml"]
    not_git = tmp_path / "not-a-clone"
    not_git.mkdir()
    base = base_model(not_git, tmp_path / "work", tmp_path / "model", not_git / "pipeline.toml", not_git / "x", None)
    assert base.status == UNAVAILABLE and "is not a git checkout" in base.reason and "\n" not in base.reason

    git(repo, "switch", "--quiet", "-c", "feature")
    (repo / "training" / "notes.txt").write_text("an uncommitted training change\n")
    assert resolve(repo, None, watched)[:2] == ("HEAD", git(repo, "rev-parse", "HEAD"))
    (repo / "training" / "notes.txt").unlink()
    assert resolve(repo, None, watched)[:2] == ("main", git(repo, "rev-parse", "main"))

    shallow = tmp_path / "shallow"
    git(tmp_path, "clone", "--quiet", "--depth", "1", "--branch", "feature", f"file://{repo}", str(shallow))
    with pytest.raises(
        BaseUnavailableError, match=r"neither origin/main nor main is in this clone \(a shallow clone\)"
    ):
        resolve(shallow, None, watched)


def test_without_a_trained_model_it_says_to_train_first(repo: Path) -> None:
    ran = ci(repo, "model-report")
    assert ran.returncode == 1
    assert "this checkout's model" in ran.stderr and "python -m training" in ran.stderr


def test_help_names_the_base_ref() -> None:
    result = run_cli("-m", "ci", "model-report", "--help")
    assert "--base-ref REF" in result.stdout and "merge-base" in result.stdout


def test_the_recorded_monotonic_check_is_shown_when_model_json_has_it() -> None:
    from ci.config import load_config
    from ci.model_report import TRAINED, Base, Comparison, render, rows, side

    metrics = {"log_loss": 0.45, "baseline_log_loss": 0.66, "roc_auc": 0.85, "mae_true_p": 0.02, "ece": 0.015}
    head = {
        "sha256": "a" * 64,
        "metrics": metrics,
        "checks": {"monotonic": {"passed": False, "histories": 12, "violations": 2}},
    }
    base = {"sha256": "b" * 64, "metrics": metrics}  # main's model.json today: no checks
    comparison = Comparison(side(head), side(base), rows(metrics, metrics, load_config().training))
    markdown = render(comparison, Base(TRAINED, "main", "c" * 40, "the merge-base of HEAD and main"))
    assert "| monotonic in elapsed days | not recorded | ❌ failed (2 violation(s) in 12 histories) |" in markdown
    assert "**Same metrics as the base**" in markdown
