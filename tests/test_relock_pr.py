"""`python -m ci.github relock-pr` end to end: a real git push to a local bare remote, and the pull
request through the fake GitHub REST API on 127.0.0.1 (tests/test_workflows_github.py).

The reports it reads are written by the checks' own writers (write_report, write_budget_json) from
the same dataclasses `python -m ci lock --upgrade` and `python -m ci budget` fill.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ci.budget.render import Comparison, DistributionDelta, write_budget_json
from ci.lock.resolve import LockChange
from ci.lock.upgrade import PackageMove, UpgradeResult
from ci.paths import REPO_ROOT, BuildPaths
from ci.reports import Finding, write_report
from tests.test_github_annotate import budget_over_limit
from tests.test_lock import LOCK_FILES
from tests.test_workflows_github import REPO, TOKEN, FakeGitHub, github  # noqa: F401 - fixture

GIT_ID = ["-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "init.defaultBranch=main"]


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(["git", *GIT_ID, *args], cwd=cwd, capture_output=True, text=True, check=True)
    return result.stdout.strip()


@pytest.fixture()
def checkout(tmp_path: Path, github: FakeGitHub) -> Path:  # noqa: F811
    """A clone of main (the lock files only), its bare origin, and the fake API knowing that origin."""
    remote = tmp_path / "origin.git"
    git(tmp_path, "init", "--quiet", "--bare", str(remote))
    work = tmp_path / "work"
    for name in LOCK_FILES:
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_ROOT / name, work / name)
    git(work, "init", "--quiet")
    git(work, "add", ".")
    git(work, "commit", "--quiet", "-m", "main")
    git(work, "push", "--quiet", str(remote), "HEAD:refs/heads/main")
    github.remote = remote
    return work


def relock(work: Path, pandas: str, limit: int, smoke: bool = True) -> BuildPaths:
    """What the workflow leaves before relock-pr: upgraded locks, and the reports of every check."""
    layer = work / "requirements-layer.txt"
    original = (REPO_ROOT / "requirements-layer.txt").read_text()
    layer.write_text(original.replace("pandas==2.3.2 ", f"pandas=={pandas} "))
    paths = BuildPaths(build=work / "build", cache=work / "build" / "cache")
    shutil.rmtree(paths.reports, ignore_errors=True)
    upgrade = UpgradeResult(
        asked=(),
        moves=[
            PackageMove("numpy", "1.26.4", "1.26.4", "2.5.5", "numpy<2.0 by scikit-learn 1.3.2"),
            PackageMove("pandas", "2.3.2", pandas),
            PackageMove("scipy", "1.16.3", "1.16.3", "1.18.1", "requires-python: scipy 1.18.1 requires Python >=3.12"),
        ],
        changes=[LockChange("requirements-layer.txt", [], [], [f"pandas 2.3.2 -> {pandas}"], True)],
    )
    write_report(paths, "lock-upgrade", True, upgrade.to_dict())
    for check in ("lock", "build", "abi", *(("smoke",) if smoke else ())):
        write_report(paths, check, True, {})
    write_report(
        paths,
        "pins",
        False,
        {},
        findings=[Finding("pins", "error", "locks: pandas 2.3.2 in training/requirements.txt != 3.0.0 in layer")],
    )
    rows = [
        DistributionDelta("pandas", "changed", 37_100_000, 39_000_000, "2.3.2", pandas),
        DistributionDelta("scipy", "changed", 101_400_000, 101_400_000, "1.16.3", "1.16.3"),
    ]
    budget = dataclasses.replace(budget_over_limit(limit), comparison=Comparison("main", "origin/main", 298, 300, rows))
    write_budget_json(paths, budget)
    return paths


def relock_pr(work: Path, github: FakeGitHub, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:  # noqa: F811
    base = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env = {
        **base,
        "PYTHONPATH": str(REPO_ROOT),
        "GITHUB_API_URL": github.url,
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_REF": "refs/heads/main",
        "GITHUB_RUN_ID": "991",
        "GITHUB_SERVER_URL": "https://github.example",
        **extra,
    }
    assert github.remote is not None
    command = [sys.executable, "-m", "ci.github", "relock-pr", "--remote", str(github.remote), *args]
    return subprocess.run(command, cwd=work, capture_output=True, text=True, env=env, timeout=120)


def branch_file(github: FakeGitHub, path: str) -> str:  # noqa: F811
    return git(github.remote or Path(), "show", f"refs/heads/ci/relock:{path}")


def test_relock_opens_one_pull_request_then_updates_it_and_reports_a_budget_failure(
    checkout: Path,
    github: FakeGitHub,  # noqa: F811
) -> None:
    main = git(checkout, "rev-parse", "HEAD")
    relock(checkout, "2.3.3", limit=250)  # 300 bytes used: over the limit

    first = relock_pr(checkout, github)
    assert first.returncode == 0, first.stderr
    assert "pull request #1 created" in first.stdout
    [pr] = github.pulls
    assert (pr["head"]["ref"], pr["base"]["ref"]) == ("ci/relock", "main")
    assert pr["title"] == "deps: re-lock for the Lambda target (2 check(s) failing)"
    body = pr["body"]
    assert body.startswith("<!-- relock -->\n## ❌ Re-lock for the Lambda target: 2 check(s) did not pass")
    assert "| budget | ❌ failed | pandas (+1.9 MB, 2.3.2 → 2.3.3; the largest growth) |" in body
    assert "unzipped size 300 bytes exceeds the 250-byte limit by 50 bytes" in body
    assert "| pins | ❌ failed | pandas |" in body, "the finding names the changed distribution"
    assert "| pandas | 2.3.2 | **2.3.3** |" in body
    assert "held back: numpy<2.0 by scikit-learn 1.3.2" in body
    assert "**+0.0 MB** (+2 bytes) vs main" in body
    assert "https://github.example/octo/forgetting-curve/actions/runs/991" in body
    assert "budget failed (caused by: pandas" in first.stdout
    # the branch: one commit on top of main with the upgraded lock; the checkout itself untouched
    assert "pandas==2.3.3 " in branch_file(github, "requirements-layer.txt")
    assert git(github.remote or Path(), "rev-parse", "refs/heads/ci/relock^") == main
    assert git(checkout, "rev-parse", "HEAD") == main and git(checkout, "branch", "--show-current") == "main"
    assert "build/" not in git(github.remote or Path(), "ls-tree", "-r", "--name-only", "refs/heads/ci/relock")

    relock(checkout, "2.3.4", limit=10_000, smoke=False)  # next week: fits, but smoke never reported
    second = relock_pr(checkout, github)
    assert second.returncode == 0, second.stderr
    assert "pull request #1 updated" in second.stdout
    assert len(github.pulls) == 1, "updated, never a second pull request"
    assert len([r for r in github.requests if r == ("POST", f"/repos/{REPO}/pulls")]) == 1
    body = github.pulls[0]["body"]
    assert "| budget | ✅ passed |" in body and "| pandas | 2.3.2 | **2.3.4** |" in body
    assert "| smoke | ⏭️ missing |  | no smoke.json: the step did not run" in body
    assert "pandas==2.3.4 " in branch_file(github, "requirements-layer.txt")
    assert git(github.remote or Path(), "rev-parse", "refs/heads/ci/relock^") == main, "rewritten, not stacked"

    patches = [r for r in github.requests if r[0] == "PATCH"]
    third = relock_pr(checkout, github)
    assert third.returncode == 0, third.stderr
    assert "branch ci/relock: unchanged" in third.stdout and "pull request #1 unchanged" in third.stdout
    assert [r for r in github.requests if r[0] == "PATCH"] == patches


def test_nothing_to_propose_when_the_locks_equal_main(checkout: Path, github: FakeGitHub) -> None:  # noqa: F811
    result = relock_pr(checkout, github)
    assert result.returncode == 0, result.stderr
    assert "nothing to propose" in result.stdout
    assert github.pulls == [] and github.requests == []
    assert not git(github.remote or Path(), "branch", "--list", "ci/relock")


def test_relock_pr_refuses_another_branch_and_a_missing_token_before_pushing(
    checkout: Path,
    github: FakeGitHub,  # noqa: F811
) -> None:
    relock(checkout, "2.3.3", limit=10_000)
    elsewhere = relock_pr(checkout, github, GITHUB_REF="refs/heads/feature", GITHUB_TOKEN="")  # the ref is named first
    assert elsewhere.returncode == 1
    assert "checked out refs/heads/feature, but the re-lock pull request is built on main" in elsewhere.stderr
    no_token = relock_pr(checkout, github, GITHUB_TOKEN="")
    assert no_token.returncode == 1 and "GITHUB_TOKEN is not set" in no_token.stderr
    assert not git(github.remote or Path(), "branch", "--list", "ci/relock"), "nothing pushed"


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (("--branch", "main", "--base", "main"), "is the base branch"),
        (("--branch", "main"), "is the base branch"),
        (("--branch", "release"), "is outside ci/relock/"),
        (("--branch", "ci/relocks"), "is outside ci/relock/"),
        (("--branch", "ci/relock/../../main"), "is outside ci/relock/"),
        (("--branch", "ci/relock", "--base", "ci/relock"), "is the base branch"),
    ],
)
def test_relock_pr_force_pushes_only_its_own_branch(
    args: tuple[str, ...],
    why: str,
    checkout: Path,
    github: FakeGitHub,  # noqa: F811
) -> None:
    main = git(github.remote or Path(), "rev-parse", "refs/heads/main")
    relock(checkout, "2.3.3", limit=10_000)
    result = relock_pr(checkout, github, *args)
    assert result.returncode == 1 and why in result.stderr and "fix: use --branch ci/relock" in result.stderr
    assert git(github.remote or Path(), "rev-parse", "refs/heads/main") == main, "main untouched"
    assert git(github.remote or Path(), "for-each-ref", "--format=%(refname)") == "refs/heads/main", "nothing pushed"
    assert github.requests == [], "no pull request asked for"


def test_a_branch_under_the_prefix_is_the_bots(checkout: Path, github: FakeGitHub) -> None:  # noqa: F811
    relock(checkout, "2.3.3", limit=10_000)
    result = relock_pr(checkout, github, "--branch", "ci/relock/weekly")
    assert result.returncode == 0, result.stderr
    assert "pandas==2.3.3 " in git(
        github.remote or Path(), "show", "refs/heads/ci/relock/weekly:requirements-layer.txt"
    )


def test_a_read_only_token_names_the_permissions(checkout: Path, github: FakeGitHub) -> None:  # noqa: F811
    from tests.test_workflows_github import READ_ONLY_TOKEN

    relock(checkout, "2.3.3", limit=10_000)
    result = relock_pr(checkout, github, GITHUB_TOKEN=READ_ONLY_TOKEN)
    assert result.returncode == 1
    assert "answered 403" in result.stderr and "contents: write, pull-requests: write" in result.stderr


def test_the_commit_message_lists_every_lock_that_moved_not_only_the_layers_packages() -> None:
    from ci.github.relock import commit_message

    only_dev = UpgradeResult(
        asked=(),
        moves=[PackageMove("pandas", "2.3.2", "2.3.2")],
        changes=[
            LockChange("requirements-layer.txt", [], [], [], False),
            LockChange("requirements-pipeline.txt", [], [], ["moto 5.1.0 -> 5.1.1"], True),
            LockChange(
                "requirements-dev.txt", ["pytest-timeout==2.3.1"], ["nose==1.3.7"], ["ruff 0.6.0 -> 0.6.1"], True
            ),
            LockChange("training/requirements.txt", [], [], [], True),
        ],
    ).to_dict()
    message = commit_message(only_dev)
    subject, blank, *body = message.splitlines()
    assert subject.startswith("deps: re-lock for the Lambda target") and blank == ""
    assert body == [
        "requirements-pipeline.txt: moto 5.1.0 -> 5.1.1",
        "requirements-dev.txt: +pytest-timeout==2.3.1, -nose==1.3.7, ruff 0.6.0 -> 0.6.1",
        "training/requirements.txt: same pins, hashes or annotations updated",
    ]
    layer_too = UpgradeResult(
        asked=(),
        moves=[PackageMove("pandas", "2.3.2", "2.3.3")],
        changes=[LockChange("requirements-layer.txt", [], [], ["pandas 2.3.2 -> 2.3.3"], True)],
    ).to_dict()
    assert commit_message(layer_too).splitlines()[2:] == ["pandas 2.3.2 -> 2.3.3"]
    assert commit_message(None) == subject
