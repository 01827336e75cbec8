"""`python -m ci.github relock-pr`: one pull request from a fixed branch, opened once, then updated.

A weekly PR per run would bury reviewers, so the bot's own branch (ci/relock) is rewritten and force-pushed
each time, committed through a temporary index with git hooks disabled (the job holds a write token).
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from ci.errors import PipelineError
from ci.github.api import GitHubApi

BOT_NAME = "github-actions[bot]"
BOT_EMAIL = "41898282+github-actions[bot]@users.noreply.github.com"
PR_FIXES = {
    403: "give the job `permissions: contents: write, pull-requests: write`, and allow GitHub Actions to create "
    "pull requests (Settings → Actions → General → Workflow permissions)",
    422: "the branch may not exist on GitHub yet, or it has no commits beyond the base: check the push above",
}


BRANCH_PREFIX = "ci/relock"  # the only branches relock-pr rewrites: this one and those under it
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")


def checked_branch(branch: str, base: str) -> str:
    """`branch` if relock-pr may force-push it: the bot's own, not the base; otherwise a PipelineError."""
    under = branch.removeprefix(BRANCH_PREFIX + "/") if branch.startswith(BRANCH_PREFIX + "/") else None
    plain = under is not None and all(
        _SEGMENT.fullmatch(part) and part not in (".", "..") and not part.endswith(".lock") for part in under.split("/")
    )
    if branch == base:
        problem = f"--branch {branch!r} is the base branch: relock-pr force-pushes its branch"
    elif branch != BRANCH_PREFIX and not plain:
        problem = f"--branch {branch!r} is outside {BRANCH_PREFIX}/: relock-pr force-pushes only the bot's own branches"
    else:
        return branch
    raise PipelineError(problem, f"use --branch {BRANCH_PREFIX} (the default) or --branch {BRANCH_PREFIX}/NAME")


@dataclass(frozen=True)
class PushResult:
    action: str  # pushed | unchanged | nothing (the files equal the base)
    commit: str | None


@dataclass(frozen=True)
class PullRequest:
    action: str  # created | updated | unchanged
    number: int
    url: str


def git(root: Path, *args: str, env: Mapping[str, str] | None = None, check: bool = True) -> str:
    command = ["git", "-c", "core.hooksPath=/dev/null", *args]
    result = subprocess.run(
        command, cwd=root, capture_output=True, text=True, check=False, env={**os.environ, **(env or {})}
    )
    if check and result.returncode != 0:
        shown = " ".join(a for a in args if not a.startswith("http.extraheader"))
        raise PipelineError(
            f"git {shown} failed in {root}: {(result.stderr or result.stdout).strip()[:400]}",
            "check the remote URL and that the job's token may push (permissions: contents: write)",
        )
    return result.stdout.strip()


def auth_args(remote: str, token: str | None) -> list[str]:
    """The token as an HTTP header for this one command: never written to .git/config or the URL."""
    if not token or not remote.startswith(("https://", "http://")):
        return []
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return ["-c", f"http.extraheader=AUTHORIZATION: basic {basic}"]


def commit_files(root: Path, files: Sequence[str], message: str) -> str | None:
    """A commit of `files` as they are in the working tree on top of HEAD; None if they equal HEAD's."""
    with tempfile.TemporaryDirectory(prefix="relock-index-") as tmp:
        env = {
            "GIT_INDEX_FILE": str(Path(tmp) / "index"),
            "GIT_AUTHOR_NAME": BOT_NAME,
            "GIT_AUTHOR_EMAIL": BOT_EMAIL,
            "GIT_COMMITTER_NAME": BOT_NAME,
            "GIT_COMMITTER_EMAIL": BOT_EMAIL,
        }
        git(root, "read-tree", "HEAD", env=env)
        git(root, "add", "--", *files, env=env)
        tree = git(root, "write-tree", env=env)
        if tree == git(root, "rev-parse", "HEAD^{tree}"):
            return None
        return git(root, "commit-tree", tree, "-p", "HEAD", "-m", message, env=env)


def push_branch(root: Path, remote: str, branch: str, base: str, commit: str, token: str | None) -> str:
    """Force-push `commit` to `branch` (the bot's own, see checked_branch) unless it already holds the same
    tree on the same base."""
    checked_branch(branch, base)
    auth = auth_args(remote, token)
    current = git(root, *auth, "ls-remote", remote, f"refs/heads/{branch}").split("\t")[0]
    if current:
        git(root, *auth, "fetch", "--quiet", "--no-tags", remote, f"+refs/heads/{branch}:refs/relock/current")
        same_tree = git(root, "rev-parse", "refs/relock/current^{tree}") == git(root, "rev-parse", f"{commit}^{{tree}}")
        same_base = git(root, "rev-parse", "refs/relock/current^") == git(root, "rev-parse", f"{commit}^")
        if same_tree and same_base:
            return "unchanged"
    git(root, *auth, "push", "--quiet", "--force", remote, f"{commit}:refs/heads/{branch}")
    return "pushed"


def upsert_pull_request(api: GitHubApi, repository: str, branch: str, base: str, title: str, body: str) -> PullRequest:
    """Update the open pull request from `branch` into `base`, or create it: never a second one."""
    owner = repository.split("/", 1)[0]
    owner_repo = "/".join(quote(part, safe="") for part in repository.split("/", 1))
    query = urlencode({"state": "open", "head": f"{owner}:{branch}", "base": base, "per_page": 100})
    found = [pr for pr in api.paginate(f"/repos/{owner_repo}/pulls?{query}") if _from_branch(pr, repository, branch)]
    if found:
        pr = min(found, key=lambda item: int(item["number"]))
        number = int(pr["number"])
        if pr.get("body") == body and pr.get("title") == title:
            return PullRequest("unchanged", number, str(pr.get("html_url", "")))
        updated, _ = api.request(
            "PATCH", f"/repos/{owner_repo}/pulls/{number}", {"title": title, "body": body}, fixes=PR_FIXES
        )
        return PullRequest("updated", number, str(updated.get("html_url", "")))
    payload = {"title": title, "head": branch, "base": base, "body": body, "maintainer_can_modify": True}
    created, _ = api.request("POST", f"/repos/{owner_repo}/pulls", payload, fixes=PR_FIXES)
    return PullRequest("created", int(created["number"]), str(created.get("html_url", "")))


def _from_branch(pr: dict[str, Any], repository: str, branch: str) -> bool:
    head = pr.get("head") or {}
    repo = (head.get("repo") or {}).get("full_name")
    return head.get("ref") == branch and repo == repository


def commit_message(upgrade: dict[str, Any] | None) -> str:
    """The subject, then every lock's moves: the layer's packages first, then each other lock that changed."""
    from ci.github.relock_body import changed_packages

    body = [
        f"{p['name']} {p.get('old') or '(new)'} -> {p.get('new') or '(removed)'}" for p in changed_packages(upgrade)
    ]
    for change in ((upgrade or {}).get("locks") or [])[1:]:  # the layer lock's moves are the packages above
        if not isinstance(change, dict) or not change.get("rewritten"):
            continue
        moved = [*(f"+{p}" for p in change.get("added") or []), *(f"-{p}" for p in change.get("removed") or [])]
        moved += list(change.get("changed") or [])
        body.append(f"{change.get('file')}: {', '.join(moved) or 'same pins, hashes or annotations updated'}")
    subject = "deps: re-lock for the Lambda target (python -m ci lock --upgrade)"
    return "\n".join([subject, "", *body]) if body else subject


def lock_files(root: Path) -> list[str]:
    """The .in files and locks pipeline.toml names, relative to `root`: all a re-lock may change."""
    from ci.config import load_config

    lock = load_config(root=root).lock
    paths = (
        *(lock.requirements_in, lock.layer_lock, lock.training_in, lock.training_lock),
        *(lock.pipeline_in, lock.pipeline_lock, lock.dev_in, lock.dev_lock, lock.bootstrap_lock),
    )
    return [p.resolve().relative_to(root.resolve()).as_posix() for p in paths if p.is_file()]


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    relock = sub.add_parser(
        "relock-pr", help="commit the re-locked files to a fixed branch, push it, and open or update its pull request"
    )
    relock.add_argument("--reports", type=Path, default=Path("build/reports"), help="reports of the re-lock run")
    relock.add_argument(
        "--branch", default=BRANCH_PREFIX, help=f"the bot's branch, rewritten on every run ({BRANCH_PREFIX}[/NAME])"
    )
    relock.add_argument("--base", default="main", help="the branch the pull request targets (checked out here)")
    relock.add_argument("--remote", default=None, help="git remote URL or path (default: the repository on GitHub)")
    relock.add_argument("--repo", default=None, help="owner/name (default: GITHUB_REPOSITORY)")
    relock.add_argument(
        "--path", action="append", default=[], help="a file to commit (default: every .in file and lock)"
    )


def run_relock_pr(args: argparse.Namespace) -> int:
    from ci.github.relock_body import read_reports, render_body
    from ci.github.summary import write_summary_text

    root = Path.cwd()
    checked_branch(args.branch, args.base)  # before anything: the branch is force-pushed
    repository = args.repo or os.environ.get("GITHUB_REPOSITORY", "")
    if repository.count("/") != 1:
        raise PipelineError(f"repository {repository!r} is not owner/name", "pass --repo owner/name")
    ref = os.environ.get("GITHUB_REF", "")
    if ref and ref != f"refs/heads/{args.base}":
        raise PipelineError(
            f"this run checked out {ref}, but the re-lock pull request is built on {args.base}",
            f"run the workflow from {args.base} (Actions → relock → Run workflow → Use workflow from: {args.base})",
        )
    api = GitHubApi.from_env(purpose="to open the re-lock pull request")  # before pushing anything
    server = os.environ.get("GITHUB_SERVER_URL", "https://github.com")
    remote = args.remote or f"{server}/{repository}.git"
    run_id = os.environ.get("GITHUB_RUN_ID")
    body, failed = render_body(args.reports, f"{server}/{repository}/actions/runs/{run_id}" if run_id else None)
    message = commit_message(read_reports(args.reports).get("lock-upgrade"))
    commit = commit_files(root, args.path or lock_files(root), message)
    if commit is None:
        print(f"nothing to propose: the .in files and locks equal {args.base}'s; no push, no pull request")
        write_summary_text(f"### Re-lock: nothing to propose\n\nThe locks on {args.base} are current.\n")
        return 0
    pushed = push_branch(root, remote, args.branch, args.base, commit, os.environ.get("GITHUB_TOKEN"))
    title = "deps: re-lock for the Lambda target" + (f" ({len(failed)} check(s) failing)" if failed else "")
    pr = upsert_pull_request(api, repository, args.branch, args.base, title, body)
    print(f"branch {args.branch}: {pushed} ({commit[:12]}); pull request #{pr.number} {pr.action}: {pr.url}")
    for verdict in failed:
        cause = f" (caused by: {verdict.culprit})" if verdict.culprit else ""
        print(f"  {verdict.check} {verdict.state}{cause}: {verdict.detail}")
    write_summary_text(body)
    return 0


HANDLERS = {"relock-pr": run_relock_pr}
