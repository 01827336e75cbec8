"""`relock-pr`: the bot's own branch (ci/relock), force-pushed each run, and one pull request from it, updated.
Its body names from the run's reports what moved, the size against main, and each failing check's likely cause."""

import argparse
import base64
import os
import re
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlencode

from ci.config import lock_files as configured_lock_files
from ci.errors import PipelineError
from ci.github.api import GitHubApi, read_json_report, run_url, table_cell, write_summary_text
from ci.reports import Finding, findings_of

MARKER = "<!-- relock -->"
CHECKS = ("lock", "build", "abi", "budget", "pins", "smoke")  # what verify.yml and make pipeline judge
IMPORT_NAMES = {"scikit-learn": ("sklearn",), "python-dateutil": ("dateutil",)}  # import name != distribution
MB = 1_000_000
BOT_NAME = "github-actions[bot]"
BOT_EMAIL = "41898282+github-actions[bot]@users.noreply.github.com"
PR_FIXES = {
    403: "give the job `permissions: contents: write, pull-requests: write`, and allow GitHub Actions to create "
    "pull requests (Settings → Actions → General → Workflow permissions)",
    422: "the branch may not exist on GitHub yet, or it has no commits beyond the base: check the push above",
}
BRANCH_PREFIX = "ci/relock"  # the only branches relock-pr rewrites: this one and those under it
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")


def check_branch(branch: str, base: str) -> None:
    """relock-pr force-pushes `branch`: only the bot's own, never the base."""
    first, *under = branch.removeprefix(BRANCH_PREFIX).split("/")  # ["", NAME...] for a branch under it
    plain = all(_SEGMENT.fullmatch(part) and part not in (".", "..") and not part.endswith(".lock") for part in under)
    own = branch.startswith(BRANCH_PREFIX) and first == "" and plain
    fix = f"use --branch {BRANCH_PREFIX} (the default) or --branch {BRANCH_PREFIX}/NAME"
    if branch == base:
        raise PipelineError(f"--branch {branch!r} is the base branch: relock-pr force-pushes its branch", fix)
    if not own:
        problem = f"--branch {branch!r} is outside {BRANCH_PREFIX}/: relock-pr force-pushes only the bot's own branches"
        raise PipelineError(problem, fix)


def git(root: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    command = ["git", "-c", "core.hooksPath=/dev/null", *args]
    result = subprocess.run(
        command, cwd=root, capture_output=True, text=True, check=False, env={**os.environ, **(env or {})}
    )
    if result.returncode != 0:
        shown = " ".join(a for a in args if not a.startswith("http.extraheader"))
        raise PipelineError(
            f"git {shown} failed in {root}: {(result.stderr or result.stdout).strip()[:400]}",
            "check the remote URL and that the job's token may push (permissions: contents: write)",
        )
    return result.stdout.strip()


def commit_files(root: Path, files: Sequence[str], message: str) -> str | None:
    """A commit of `files` as they are in the working tree on top of HEAD; None if they equal HEAD's."""
    with tempfile.TemporaryDirectory(prefix="relock-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        for role in ("AUTHOR", "COMMITTER"):
            env |= {f"GIT_{role}_NAME": BOT_NAME, f"GIT_{role}_EMAIL": BOT_EMAIL}
        git(root, "read-tree", "HEAD", env=env)
        git(root, "add", "--", *files, env=env)
        tree = git(root, "write-tree", env=env)
        if tree == git(root, "rev-parse", "HEAD^{tree}"):
            return None
        return git(root, "commit-tree", tree, "-p", "HEAD", "-m", message, env=env)


def push_branch(root: Path, remote: str, branch: str, commit: str, token: str | None) -> str:
    """Force-push `commit` to the bot's `branch` (check_branch) unless it already holds the same tree and base."""
    auth = []  # the token as an HTTP header for each command: never written to .git/config or the URL
    if token and remote.startswith(("https://", "http://")):
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        auth = ["-c", f"http.extraheader=AUTHORIZATION: basic {basic}"]
    current = git(root, *auth, "ls-remote", remote, f"refs/heads/{branch}").split("\t")[0]
    if current:
        git(root, *auth, "fetch", "--quiet", "--no-tags", remote, f"+refs/heads/{branch}:refs/relock/current")
        tree_and_base = git(root, "rev-parse", "refs/relock/current^{tree}", "refs/relock/current^")
        if tree_and_base == git(root, "rev-parse", f"{commit}^{{tree}}", f"{commit}^"):
            return "unchanged"
    git(root, *auth, "push", "--quiet", "--force", remote, f"{commit}:refs/heads/{branch}")
    return "pushed"


def upsert_pull_request(api: GitHubApi, branch: str, base: str, title: str, body: str) -> tuple[str, int, str]:
    """Update the open pull request from `branch` into `base`, or create it (never a second one): (action, #, URL)."""
    repo, owner = api.repo_path, api.repository.split("/", 1)[0]
    query = urlencode({"state": "open", "head": f"{owner}:{branch}", "base": base, "per_page": 100})
    found = []
    for pr in api.paginate(f"{repo}/pulls?{query}"):
        head = pr.get("head") or {}
        if head.get("ref") == branch and (head.get("repo") or {}).get("full_name") == api.repository:
            found.append(pr)
    if found:
        pr = min(found, key=lambda item: int(item["number"]))
        number = int(pr["number"])
        if pr.get("body") == body and pr.get("title") == title:
            return "unchanged", number, str(pr.get("html_url", ""))
        updated, _ = api.request("PATCH", f"{repo}/pulls/{number}", {"title": title, "body": body}, fixes=PR_FIXES)
        return "updated", number, str(updated.get("html_url", ""))
    payload = {"title": title, "head": branch, "base": base, "body": body, "maintainer_can_modify": True}
    created, _ = api.request("POST", f"{repo}/pulls", payload, fixes=PR_FIXES)
    return "created", int(created["number"]), str(created.get("html_url", ""))


def commit_message(upgrade: dict[str, Any] | None) -> str:
    """The subject, then every lock's moves: the layer's packages first, then each other lock that changed."""
    body = [
        f"{p['name']} {p.get('old') or '(new)'} -> {p.get('new') or '(removed)'}" for p in changed_packages(upgrade)
    ]
    for change in ((upgrade or {}).get("locks") or [])[1:]:  # the layer lock's moves are the packages above
        if not isinstance(change, dict) or not change.get("rewritten"):
            continue
        moved = ", ".join(_moved_pins(change)) or "same pins, hashes or annotations updated"
        body.append(f"{change.get('file')}: {moved}")
    subject = "deps: re-lock for the Lambda target (python -m ci lock --upgrade)"
    return "\n".join([subject, "", *body]) if body else subject


def lock_files(root: Path) -> list[str]:
    """The .in files and locks pipeline.toml names ([lock]'s paths), relative to `root`: all a re-lock may change."""
    return [p.resolve().relative_to(root.resolve()).as_posix() for p in configured_lock_files(root) if p.is_file()]


def run_relock_pr(args: argparse.Namespace) -> int:
    root = Path.cwd()
    check_branch(args.branch, args.base)  # before anything: the branch is force-pushed
    ref = os.environ.get("GITHUB_REF", "")
    if ref and ref != f"refs/heads/{args.base}":
        raise PipelineError(
            f"this run checked out {ref}, but the re-lock pull request is built on {args.base}",
            f"run the workflow from {args.base} (Actions → relock → Run workflow → Use workflow from: {args.base})",
        )
    api = GitHubApi.from_env(args.repo, purpose="to open the re-lock pull request")  # before pushing anything
    remote = args.remote or f"{os.environ.get('GITHUB_SERVER_URL', 'https://github.com')}/{api.repository}.git"
    found = {name: read_json_report(args.reports / f"{name}.json") for name in (*CHECKS, "lock-upgrade")}
    reports = {name: report for name, report in found.items() if isinstance(report, dict)}  # damaged reads as missing
    body, failed = render_body(reports, run_url(api.repository))
    commit = commit_files(root, args.path or lock_files(root), commit_message(reports.get("lock-upgrade")))
    if commit is None:
        print(f"nothing to propose: the .in files and locks equal {args.base}'s; no push, no pull request")
        write_summary_text(f"### Re-lock: nothing to propose\n\nThe locks on {args.base} are current.\n")
        return 0
    pushed = push_branch(root, remote, args.branch, commit, os.environ.get("GITHUB_TOKEN"))
    title = "deps: re-lock for the Lambda target" + (f" ({len(failed)} check(s) failing)" if failed else "")
    action, number, url = upsert_pull_request(api, args.branch, args.base, title, body)
    print(f"branch {args.branch}: {pushed} ({commit[:12]}); pull request #{number} {action}: {url}")
    for verdict in failed:
        cause = f" (caused by: {verdict.culprit})" if verdict.culprit else ""
        print(f"  {verdict.check} {verdict.state}{cause}: {verdict.detail}")
    write_summary_text(body)
    return 0


class CheckVerdict(NamedTuple):
    check: str
    state: str  # passed | failed | missing
    detail: str  # first error finding, or why the report is missing
    culprit: str | None = None  # the changed package that most likely caused a failure


def changed_packages(upgrade: dict[str, Any] | None) -> list[dict[str, Any]]:
    packages = (upgrade or {}).get("packages") or []
    return [p for p in packages if isinstance(p, dict) and p.get("old") != p.get("new")]


def culprit_from_findings(findings: list[Finding], changed: list[str]) -> str | None:
    """The first changed distribution an error finding names (message or file), in any of its spellings."""
    for finding in findings:
        text = f"{finding.message} {finding.file or ''}"
        for name in changed:
            spellings = {name, name.replace("-", "_"), *IMPORT_NAMES.get(name, ())}
            if any(re.search(rf"(?<![\w-]){re.escape(s)}(?![\w-])", text, flags=re.IGNORECASE) for s in spellings):
                return name
    return None


def budget_culprit(budget: dict[str, Any]) -> str | None:
    """The distribution that grew most against the baseline (best effort: size is additive)."""
    rows = ((budget.get("baseline") or {}).get("distributions")) or []
    grown = [r for r in rows if isinstance(r, dict) and int(r.get("delta_bytes") or 0) > 0]
    if not grown:
        return None
    top = max(grown, key=lambda r: int(r["delta_bytes"]))
    versions = f", {top.get('before_version')} → {top.get('after_version')}" if top.get("before_version") else ""
    return f"{top['name']} ({_signed_mb(int(top['delta_bytes']))}{versions}; the largest growth)"


def verdict(check: str, report: dict[str, Any] | None, changed: list[str]) -> CheckVerdict:
    if report is None:
        return CheckVerdict(
            check, "missing", f"no {check}.json: the step did not run or stopped before judging (see the run's log)"
        )
    errors = [f for f in findings_of(report, check) if f.severity == "error"]  # one at least unless it passed
    if not errors:
        return CheckVerdict(check, "passed", "")
    culprit = (budget_culprit(report) if check == "budget" else None) or culprit_from_findings(errors, changed)
    return CheckVerdict(check, "failed", errors[0].message.splitlines()[0], culprit)


def _signed_mb(value: int) -> str:
    return ("+" if value > 0 else "−" if value < 0 else "±") + f"{abs(value) / MB:.1f} MB"


def _moved_pins(change: dict[str, Any]) -> list[str]:
    added, removed = change.get("added") or [], change.get("removed") or []
    return [*(f"+{p}" for p in added), *(f"-{p}" for p in removed), *(change.get("changed") or [])]


def versions_section(upgrade: dict[str, Any] | None) -> list[str]:
    if upgrade is None:
        return ["### Versions", "", "_No lock-upgrade.json: `python -m ci lock --upgrade` did not finish._", ""]
    asked = upgrade.get("asked")
    scope = "every package" if asked == "all" else "only " + ", ".join(map(str, asked or []))
    lines = [f"### Versions (layer lock; upgraded {scope})", ""]
    lines += ["| package | main | this PR | note |", "|---|---|---|---|"]
    for package in upgrade.get("packages") or []:
        old, new = package.get("old") or "—", package.get("new") or "—"
        moved = "**" + new + "**" if old != new else new
        note = f"newest {package.get('newest')}; held back: {package['held_by']}" if package.get("held_by") else ""
        lines.append(f"| {package.get('name')} | {old} | {moved} | {table_cell(note, ' ')} |")
    for pin, text in (upgrade.get("repinned") or {}).items():
        lines.append(f"\nExact pin moved on request: `{pin}` is now `{text}` (the model is retrained with it).")
    for change in (upgrade.get("locks") or [])[1:]:  # the layer lock is the table above; then training, dev
        if moved_pins := _moved_pins(change):
            lines.append(f"\n`{change['file']}`: {', '.join(moved_pins)}")
    return [*lines, ""]


def size_section(budget: dict[str, Any] | None) -> list[str]:
    if budget is None:
        return ["### Size", "", "_No budget.json: the size budget did not run._", ""]
    used, limit = int(budget.get("used_bytes") or 0), int(budget.get("limit_bytes") or 0)
    summary = f"{used:,} of {limit:,} bytes unzipped ({budget.get('percent_used')}%), "
    baseline = budget.get("baseline")
    if not baseline:
        return ["### Size", "", summary + "no baseline to compare with.", ""]
    delta = int(baseline.get("delta_bytes") or 0)
    lines = ["### Size", "", summary + f"**{_signed_mb(delta)}** ({delta:+,} bytes) vs {baseline.get('label')}."]
    rows = [r for r in baseline.get("distributions") or [] if r.get("status") != "unchanged"]
    if rows:
        lines += ["", "| distribution | change | size | versions |", "|---|---|---:|---|"]
        for row in rows:
            versions = f"{row.get('before_version') or '—'} → {row.get('after_version') or '—'}"
            lines.append(f"| {row['name']} | {row['status']} | {_signed_mb(int(row['delta_bytes']))} | {versions} |")
    return [*lines, ""]


def pins_section(pins: dict[str, Any] | None) -> list[str]:
    if pins is None:
        return ["### Pin match", "", "_No pins.json: the pin check did not run._", ""]
    if pins.get("passed") is True:
        return ["### Pin match", "", "✅ the model, the training lock and the layer lock agree.", ""]
    errors = [f for f in findings_of(pins, "pins") if f.severity == "error"]
    return ["### Pin match", "", "❌ " + "; ".join(table_cell(f.message.splitlines()[0], " ") for f in errors[:5]), ""]


def render_body(found: dict[str, dict[str, Any]], run_url: str | None = None) -> tuple[str, list[CheckVerdict]]:
    changed = [str(p["name"]) for p in changed_packages(found.get("lock-upgrade"))]
    judged = [verdict(check, found.get(check), changed) for check in CHECKS]
    bad = [v for v in judged if v.state != "passed"]
    icon = {"passed": "✅", "failed": "❌", "missing": "⏭️"}
    lines = [MARKER, "## ✅ Re-lock for the Lambda target: every check passed", ""]
    if bad:
        lines[1] = f"## ❌ Re-lock for the Lambda target: {len(bad)} check(s) did not pass"
        lines += ["Merge only once these pass; the cause is named where a finding or the size delta shows it.", ""]
    lines += ["| check | verdict | caused by | detail |", "|---|---|---|---|"]
    for v in judged:
        culprit = v.culprit or ("not named by the findings" if v.state == "failed" else "")
        lines.append(
            f"| {v.check} | {icon[v.state]} {v.state} | {table_cell(culprit, ' ')} | {table_cell(v.detail, ' ')} |"
        )
    lines += ["", *versions_section(found.get("lock-upgrade")), *size_section(found.get("budget"))]
    lines += pins_section(found.get("pins"))
    footer = f"by [this run]({run_url})" if run_url else "by `python -m ci.github relock-pr`"
    lines.append(
        f"<sub>Written {footer}: `python -m ci lock --upgrade`, retrain, build, abi, budget vs main, pins, smoke. "
        "The branch is rewritten on every run; push fixes to another branch.</sub>"
    )
    return "\n".join(lines) + "\n", bad
