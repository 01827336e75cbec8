"""`python -m ci.github`: the sticky comment, the deploy guards and the OIDC subject over real HTTP,
workflow-command escaping, the gate.

GitHub is unreachable here, so the commands talk to a small fake of the REST API on 127.0.0.1
(comments with Link pagination, update, create; a branch's ref; the OIDC subject template; token
checks): a real HTTP exchange with the same paths, verbs, headers and JSON as api.github.com,
selected through GITHUB_API_URL.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from ci.config import load_config
from ci.github.api import MAX_BODY_CHARS, Annotation, sticky_body
from ci.paths import REPO_ROOT

TOKEN = "ghs_test_token"
READ_ONLY_TOKEN = "ghs_read_only"
ADMIN_TOKEN = "ghp_repository_admin"  # a person's token: the only one that may change the OIDC template
BOT = {"login": "github-actions[bot]", "type": "Bot"}
REPO = "octo/forgetting-curve"
PR = 42
MARKER = "<!-- size-budget -->"
HEAD_SHA = "abc1234def5678abc1234def5678abc1234def56"
FOOTER = (
    "\n\n<sub>Updated for abc1234 by [run 777](https://github.example/octo/forgetting-curve/actions/runs/777);"
    " this comment is edited on every push.</sub>\n"
)


@dataclass
class FakeGitHub:
    """The issue-comments part of the REST API, in memory."""

    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    heads: dict[str, str] = field(default_factory=dict)  # branch -> commit
    oidc_template: dict[str, Any] = field(default_factory=lambda: {"use_default": True})
    pulls: list[dict[str, Any]] = field(default_factory=list)
    remote: Path | None = None  # a bare git repository standing in for the repository's branches
    next_id: int = 1000
    url: str = ""

    def add(self, number: int, body: str, user: dict[str, str] | None = None) -> dict[str, Any]:
        self.next_id += 1
        comment = {
            "id": self.next_id,
            "body": body,
            "user": user or {"login": "someone", "type": "User"},
            "html_url": f"https://github.example/{REPO}/pull/{number}#issuecomment-{self.next_id}",
        }
        self.comments.setdefault(number, []).append(comment)
        return comment

    def branch_sha(self, branch: str) -> str | None:
        """The branch's commit in the bare remote, as GitHub would see it after a push."""
        if self.remote is None:
            return None
        found = subprocess.run(
            ["git", "--git-dir", str(self.remote), "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"],
            capture_output=True,
            text=True,
        )
        return found.stdout.strip() or None

    def marked(self, number: int) -> list[dict[str, Any]]:
        return [c for c in self.comments.get(number, []) if MARKER in c["body"]]


def make_handler(state: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    list_path = re.compile(rf"^/repos/{REPO}/issues/(\d+)/comments$")
    item_path = re.compile(rf"^/repos/{REPO}/issues/comments/(\d+)$")
    ref_path = re.compile(rf"^/repos/{REPO}/git/ref/heads/([\w./-]+)$")
    oidc_path = f"/repos/{REPO}/actions/oidc/customization/sub"
    pulls_path = f"/repos/{REPO}/pulls"
    pull_path = re.compile(rf"^/repos/{REPO}/pulls/(\d+)$")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def reply(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def authorized(self, write: bool, admin: bool = False) -> bool:
            auth = self.headers.get("Authorization", "")
            if auth not in (f"Bearer {TOKEN}", f"Bearer {READ_ONLY_TOKEN}", f"Bearer {ADMIN_TOKEN}"):
                self.reply(401, {"message": "Bad credentials"})
                return False
            if (write and auth == f"Bearer {READ_ONLY_TOKEN}") or (admin and auth != f"Bearer {ADMIN_TOKEN}"):
                self.reply(403, {"message": "Resource not accessible by integration"})
                return False
            assert self.headers.get("Accept") == "application/vnd.github+json"
            assert self.headers.get("X-GitHub-Api-Version")
            return True

        def body(self) -> dict[str, Any]:
            return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

        def do_GET(self) -> None:
            state.requests.append(("GET", self.path))
            url = urlparse(self.path)
            if url.path == oidc_path:
                return self.reply(200, state.oidc_template) if self.authorized(write=False, admin=True) else None
            if url.path == pulls_path:
                if not self.authorized(write=False):
                    return None
                query = parse_qs(url.query)
                wanted = {key: query[key][0] for key in ("state", "head", "base") if key in query}
                owner = REPO.split("/")[0]
                found = [
                    pr
                    for pr in state.pulls
                    if wanted.get("state", "open") in (pr["state"], "all")
                    and ("head" not in wanted or wanted["head"] == f"{owner}:{pr['head']['ref']}")
                    and ("base" not in wanted or wanted["base"] == pr["base"]["ref"])
                ]
                return self.reply(200, found)
            branch = ref_path.match(url.path)
            if branch and branch.group(1) in state.heads:
                if not self.authorized(write=False):
                    return None
                ref, sha = f"refs/heads/{branch.group(1)}", state.heads[branch.group(1)]
                return self.reply(200, {"ref": ref, "object": {"sha": sha, "type": "commit"}})
            match = list_path.match(url.path)
            if not match:
                return self.reply(404, {"message": "Not Found"})
            if not self.authorized(write=False):
                return None
            query = parse_qs(url.query)
            per_page = int(query.get("per_page", ["30"])[0])
            page = int(query.get("page", ["1"])[0])
            items = state.comments.get(int(match.group(1)), [])
            chunk = items[(page - 1) * per_page : page * per_page]
            headers = {}
            if page * per_page < len(items):
                headers["Link"] = f'<{state.url}{url.path}?per_page={per_page}&page={page + 1}>; rel="next"'
            return self.reply(200, chunk, headers)

        def do_POST(self) -> None:
            state.requests.append(("POST", self.path))
            if self.path == pulls_path:
                if not self.authorized(write=True):
                    return None
                body = self.body()
                head, base = body.get("head"), body.get("base")
                if not state.branch_sha(str(head)) or state.branch_sha(str(head)) == state.branch_sha(str(base)):
                    return self.reply(422, {"message": f"Validation Failed: no commits between {base} and {head}"})
                if any(pr["head"]["ref"] == head and pr["state"] == "open" for pr in state.pulls):
                    return self.reply(422, {"message": f"A pull request already exists for octo:{head}."})
                state.next_id += 1
                number = len(state.pulls) + 1
                pr = {
                    "id": state.next_id,
                    "number": number,
                    "state": "open",
                    "title": body["title"],
                    "body": body["body"],
                    "head": {"ref": head, "repo": {"full_name": REPO}},
                    "base": {"ref": base},
                    "html_url": f"https://github.example/{REPO}/pull/{number}",
                }
                state.pulls.append(pr)
                return self.reply(201, pr)
            match = list_path.match(self.path)
            if not match:
                return self.reply(404, {"message": "Not Found"})
            if not self.authorized(write=True):
                return None
            comment = state.add(int(match.group(1)), self.body()["body"], user=BOT)
            return self.reply(201, comment)

        def do_PUT(self) -> None:
            state.requests.append(("PUT", self.path))
            if self.path != oidc_path:
                return self.reply(404, {"message": "Not Found"})
            if not self.authorized(write=True, admin=True):
                return None
            body = self.body()
            keys = body.get("include_claim_keys")
            if not isinstance(body.get("use_default"), bool) or (keys is not None and not isinstance(keys, list)):
                return self.reply(422, {"message": "Invalid request"})
            state.oidc_template = {"use_default": body["use_default"], **({"include_claim_keys": keys} if keys else {})}
            return self.reply(201, {})

        def do_PATCH(self) -> None:
            state.requests.append(("PATCH", self.path))
            pull = pull_path.match(self.path)
            if pull:
                prs = [pr for pr in state.pulls if pr["number"] == int(pull.group(1))]
                if not prs:
                    return self.reply(404, {"message": "Not Found"})
                if not self.authorized(write=True):
                    return None
                prs[0].update({k: v for k, v in self.body().items() if k in ("title", "body", "state")})
                return self.reply(200, prs[0])
            match = item_path.match(self.path)
            found = [c for cs in state.comments.values() for c in cs if match and c["id"] == int(match.group(1))]
            if not found:
                return self.reply(404, {"message": "Not Found"})
            if not self.authorized(write=True):
                return None
            found[0]["body"] = self.body()["body"]
            return self.reply(200, found[0])

    return Handler


@pytest.fixture()
def github() -> Iterator[FakeGitHub]:
    state = FakeGitHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def ci_github(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    return subprocess.run(
        [sys.executable, "-m", "ci.github", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env={**base, **env},
        timeout=60,
    )


@pytest.fixture()
def runner_env(github: FakeGitHub, tmp_path: Path) -> dict[str, str]:
    """What a pull_request job's runner sets, pointing at the fake API."""
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"number": PR, "pull_request": {"number": PR, "head": {"sha": HEAD_SHA}}}))
    return {
        "GITHUB_API_URL": github.url,
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_RUN_ID": "777",
        "GITHUB_SERVER_URL": "https://github.example",
    }


def comment(runner_env: dict[str, str], body: Path) -> subprocess.CompletedProcess[str]:
    return ci_github("comment", "--marker", MARKER, "--body", str(body), env=runner_env)


# --- the sticky comment --------------------------------------------------------------------------


def test_comment_is_created_once_then_updated_in_place(
    github: FakeGitHub, runner_env: dict[str, str], tmp_path: Path
) -> None:
    github.add(PR, "Looks good to me")
    report = tmp_path / "budget.md"
    report.write_text("### Lambda size budget: PASS\n\n198.4 MB of 262.1 MB\n")

    first = comment(runner_env, report)
    assert first.returncode == 0, first.stderr
    assert "comment created" in first.stdout
    [posted] = github.marked(PR)
    assert posted["body"] == f"{MARKER}\n### Lambda size budget: PASS\n\n198.4 MB of 262.1 MB{FOOTER}"

    report.write_text("### Lambda size budget: WARN\n\n240.0 MB of 262.1 MB (+41.6 MB vs main)\n")
    second = comment(runner_env, report)
    assert second.returncode == 0, second.stderr
    assert "comment updated" in second.stdout
    [updated] = github.marked(PR)
    assert updated["id"] == posted["id"]
    assert "+41.6 MB vs main" in updated["body"]
    assert len(github.comments[PR]) == 2  # the reviewer's comment and ours, nothing more

    patches = [r for r in github.requests if r[0] == "PATCH"]
    third = comment(runner_env, report)
    assert "comment unchanged" in third.stdout
    assert [r for r in github.requests if r[0] == "PATCH"] == patches, "an identical body is not re-sent"


def test_comment_is_found_beyond_the_first_page(github: FakeGitHub, runner_env: dict[str, str], tmp_path: Path) -> None:
    for index in range(130):
        github.add(PR, f"review note {index}")
    ours = github.add(PR, f"{MARKER}\nold report", user=BOT)
    report = tmp_path / "budget.md"
    report.write_text("new report\n")
    result = comment(runner_env, report)
    assert result.returncode == 0, result.stderr
    assert "comment updated" in result.stdout
    assert [c["id"] for c in github.marked(PR)] == [ours["id"]]
    assert github.marked(PR)[0]["body"] == f"{MARKER}\nnew report{FOOTER}"
    pages = [path for method, path in github.requests if method == "GET"]
    assert len(pages) == 2 and "page=2" in pages[1]


def test_comment_without_a_report_says_why_instead_of_keeping_a_stale_one(
    github: FakeGitHub, runner_env: dict[str, str], tmp_path: Path
) -> None:
    github.add(PR, f"{MARKER}\n### Lambda size budget: PASS (from an earlier push)", user=BOT)
    result = comment(runner_env, tmp_path / "missing" / "budget.md")
    assert result.returncode == 0, result.stderr
    [ours] = github.marked(PR)
    assert "earlier push" not in ours["body"]
    assert "did not produce `budget.md`" in ours["body"]
    assert "https://github.example/octo/forgetting-curve/actions/runs/777" in ours["body"]


def test_a_marked_comment_written_by_anyone_but_the_bot_is_never_edited(
    github: FakeGitHub, runner_env: dict[str, str], tmp_path: Path
) -> None:
    """Anyone can paste the marker: the report must not overwrite (or hide behind) their comment."""
    person = github.add(PR, f"quoting the bot: {MARKER} looks wrong to me")
    lookalike = github.add(PR, f"{MARKER}\nfake report", user={"login": "github-actions[bot]", "type": "User"})
    other_bot = github.add(PR, f"{MARKER}\nanother app's report", user={"login": "other-app[bot]", "type": "Bot"})
    report = tmp_path / "budget.md"
    report.write_text("### Lambda size budget: PASS\n")

    result = comment(runner_env, report)
    assert result.returncode == 0, result.stderr
    assert "comment created" in result.stdout
    assert [r for r in github.requests if r[0] == "PATCH"] == []
    assert [c["body"] for c in (person, lookalike, other_bot)] == [
        f"quoting the bot: {MARKER} looks wrong to me",
        f"{MARKER}\nfake report",
        f"{MARKER}\nanother app's report",
    ]
    [ours] = [c for c in github.marked(PR) if c["user"] == BOT]
    assert ours["body"].startswith(f"{MARKER}\n### Lambda size budget: PASS")

    again = comment(runner_env, report)  # the next push updates ours, still nobody else's
    assert "comment unchanged" in again.stdout and len(github.marked(PR)) == 4

    by_app = ci_github(
        "comment", "--marker", MARKER, "--body", str(report), "--author", "other-app[bot]", env=runner_env
    )  # another app posting through its own token: its own comment is the sticky one
    assert "comment updated" in by_app.stdout, by_app.stderr
    assert other_bot["body"].startswith(f"{MARKER}\n### Lambda size budget: PASS")


def test_comment_with_a_read_only_token_names_the_permission(
    github: FakeGitHub, runner_env: dict[str, str], tmp_path: Path
) -> None:
    report = tmp_path / "budget.md"
    report.write_text("report\n")
    result = comment({**runner_env, "GITHUB_TOKEN": READ_ONLY_TOKEN}, report)
    assert result.returncode == 1
    assert "answered 403" in result.stderr
    assert "pull-requests: write" in result.stderr
    assert github.marked(PR) == []


def test_comment_needs_a_token_and_a_hidden_marker(runner_env: dict[str, str], tmp_path: Path) -> None:
    report = tmp_path / "budget.md"
    report.write_text("report\n")
    no_token = comment({k: v for k, v in runner_env.items() if k != "GITHUB_TOKEN"}, report)
    assert no_token.returncode == 1 and "GITHUB_TOKEN is not set" in no_token.stderr
    visible = ci_github("comment", "--marker", "size-budget", "--body", str(report), env=runner_env)
    assert visible.returncode == 1 and "not an HTML comment" in visible.stderr


def test_an_oversized_report_is_cut_to_what_github_accepts() -> None:
    body = sticky_body(MARKER, "x" * (MAX_BODY_CHARS * 2))
    assert len(body) == MAX_BODY_CHARS
    assert body.startswith(MARKER) and "truncated" in body


# --- annotations (the report contract's side: tests/test_github_annotate.py) ------------------


def test_annotation_properties_are_escaped() -> None:
    rendered = Annotation("error", "100% bad\r\nline", "a: b, c", "dir/f,1.txt", 7).render()
    assert rendered == "::error file=dir/f%2C1.txt,line=7,title=a%3A b%2C c::100%25 bad%0D%0Aline"


# --- gate, summary, config -----------------------------------------------------------------------


def needs(**results: str) -> str:
    return json.dumps({job: {"result": result, "outputs": {}} for job, result in results.items()})


def test_gate_verifies_only_when_every_check_succeeded(tmp_path: Path) -> None:
    out, summary = tmp_path / "output", tmp_path / "summary.md"
    env = {"GITHUB_OUTPUT": str(out), "GITHUB_STEP_SUMMARY": str(summary)}
    all_ok = needs(build="success", budget="success", pins="success", abi="success", smoke="success")
    ok = ci_github("gate", "--require", "build", "budget", "pins", "abi", "smoke", env={**env, "NEEDS": all_ok})
    assert ok.returncode == 0, ok.stderr
    assert out.read_text() == "verified=true\n"

    out.unlink()
    skipped = needs(build="success", budget="failure", pins="success", abi="success", smoke="skipped")
    blocked = ci_github("gate", "--require", "build", "budget", "pins", "abi", "smoke", env={**env, "NEEDS": skipped})
    assert blocked.returncode == 1
    assert "budget (failure), smoke (skipped)" in blocked.stderr
    assert out.read_text() == "verified=false\n"
    assert "| smoke | ⏭️ skipped |" in summary.read_text()

    missing = ci_github("gate", "--require", "smoke", env={**env, "NEEDS": needs(build="success")})
    assert missing.returncode == 1 and "smoke (missing)" in missing.stderr


def test_summary_appends_reports_and_explains_missing_ones(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    report = tmp_path / "budget.md"
    report.write_text("### Lambda size budget: PASS\n")
    result = ci_github("summary", str(report), str(tmp_path / "nope.md"), env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert result.returncode == 0, result.stderr
    text = summary.read_text()
    assert text.startswith("earlier step\n### Lambda size budget: PASS\n")
    assert "nope.md** was not produced" in text


def test_config_exposes_pipeline_values_as_step_outputs(tmp_path: Path) -> None:
    out = tmp_path / "output"
    result = ci_github("config", "region=deploy.region", env={"GITHUB_OUTPUT": str(out)})
    assert result.returncode == 0, result.stderr
    assert out.read_text() == f"region={load_config().deploy.region}\n"
    bad = ci_github("config", "region=deploy.nowhere", env={"GITHUB_OUTPUT": str(out)})
    assert bad.returncode == 1 and "does not name a pipeline.toml value" in bad.stderr


# --- deploy guards: only from main, only the tip of main, only the one AWS account --------------

OLDER_SHA = "1" * 40
NEWER_SHA = "2" * 40


def deploy_env(
    github: FakeGitHub, tmp_path: Path, ref: str = "refs/heads/main", sha: str = OLDER_SHA
) -> dict[str, str]:
    """What deploy.yml's runner sets for a push of `sha` to `ref`."""
    return {
        "GITHUB_API_URL": github.url,
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_REF": ref,
        "GITHUB_SHA": sha,
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
    }


def test_a_deploy_run_on_another_branch_fails_and_says_where_to_run_it(github: FakeGitHub, tmp_path: Path) -> None:
    env = deploy_env(github, tmp_path, ref="refs/heads/feature/try-it")
    for args in (["--ref-only"], []):
        result = ci_github("deploy-freshness", "--branch", "main", *args, env=env)
        assert result.returncode == 1
        assert "ran on refs/heads/feature/try-it, but production deploys only from main" in result.stderr
        assert "Use workflow from: main" in result.stderr
    assert github.requests == [], "the branch alone decides; no API call"
    assert not (tmp_path / "output").exists()
    on_main = ci_github("deploy-freshness", "--branch", "main", "--ref-only", env=deploy_env(github, tmp_path))
    assert on_main.returncode == 0, on_main.stderr


def test_the_tip_of_main_is_deployed(github: FakeGitHub, tmp_path: Path) -> None:
    github.heads["main"] = OLDER_SHA
    result = ci_github("deploy-freshness", "--branch", "main", env=deploy_env(github, tmp_path, sha=OLDER_SHA))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "output").read_text() == f"fresh=true\nhead={OLDER_SHA}\n"
    assert ("GET", f"/repos/{REPO}/git/ref/heads/main") in github.requests


def test_an_older_commit_finishing_last_is_skipped_with_the_reason(github: FakeGitHub, tmp_path: Path) -> None:
    """Push 1, push 2; run 1's verify ends last: it must not replace 2 in production."""
    github.heads["main"] = NEWER_SHA
    result = ci_github("deploy-freshness", "--branch", "main", env=deploy_env(github, tmp_path, sha=OLDER_SHA))
    assert result.returncode == 0, result.stderr  # skipped, not failed: nothing is wrong with the commit
    assert (tmp_path / "output").read_text() == f"fresh=false\nhead={NEWER_SHA}\n"
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith("### Deploy skipped: 1111111 is no longer the tip of main")
    assert "main is at 2222222 now" in summary
    assert result.stdout.startswith("::notice title=Deploy skipped%3A a newer commit is on main::main is at 2222222")


def test_freshness_fails_closed_when_github_cannot_say(github: FakeGitHub, tmp_path: Path) -> None:
    env = deploy_env(github, tmp_path)
    unknown = ci_github("deploy-freshness", "--branch", "main", env=env)  # the fake has no main
    assert unknown.returncode == 1 and "answered 404" in unknown.stderr
    assert "check GITHUB_REPOSITORY and --branch" in unknown.stderr
    no_token = ci_github("deploy-freshness", "--branch", "main", env={**env, "GITHUB_TOKEN": ""})
    assert no_token.returncode == 1 and "needs a token to read the branch's tip" in no_token.stderr
    assert not (tmp_path / "output").exists()


ROLE = "arn:aws:iam::123456789012:role/forgetting-curve-deploy"


@pytest.mark.parametrize(
    ("account", "role", "message"),
    [
        ("", ROLE, "AWS_ACCOUNT_ID is '', not a 12-digit AWS account id"),
        ("12345", ROLE, "AWS_ACCOUNT_ID is '12345', not a 12-digit AWS account id"),
        ("123456789012", "", "AWS_DEPLOY_ROLE_ARN is '', not an IAM role ARN"),
        ("210987654321", ROLE, "is in account 123456789012, but AWS_ACCOUNT_ID allows only 210987654321"),
    ],
    ids=["unset", "malformed", "no-role", "other-account"],
)
def test_the_allowed_account_must_be_set_and_hold_the_role(
    tmp_path: Path, account: str, role: str, message: str
) -> None:
    out = tmp_path / "output"
    env = {"AWS_ACCOUNT_ID": account, "AWS_DEPLOY_ROLE_ARN": role, "GITHUB_OUTPUT": str(out)}
    result = ci_github("aws-account", env=env)
    assert result.returncode == 1
    assert message in result.stderr and "fix:" in result.stderr
    assert not out.exists(), "no account-id output: allowed-account-ids must never be empty"


def test_the_allowed_account_is_the_step_output(tmp_path: Path) -> None:
    out = tmp_path / "output"
    env = {"AWS_ACCOUNT_ID": "123456789012", "AWS_DEPLOY_ROLE_ARN": ROLE, "GITHUB_OUTPUT": str(out)}
    result = ci_github("aws-account", env=env)
    assert result.returncode == 0, result.stderr
    assert out.read_text() == "account-id=123456789012\n"


# --- the OIDC subject template the deploy role's trust needs --------------------------------------


def test_oidc_subject_check_names_the_fix_then_apply_sets_exactly_repo_context_ref(github: FakeGitHub) -> None:
    env = {"GITHUB_API_URL": github.url, "GITHUB_TOKEN": ADMIN_TOKEN}
    check = ci_github("oidc-subject", "--repo", REPO, env=env)
    assert check.returncode == 1
    assert "its deploy job cannot assume the deploy role" in check.stderr
    assert f"python -m ci.github oidc-subject --repo {REPO} --apply" in check.stderr
    assert github.oidc_template == {"use_default": True}

    applied = ci_github("oidc-subject", "--repo", REPO, "--apply", env=env)
    assert applied.returncode == 0, applied.stderr
    assert github.oidc_template == {"use_default": False, "include_claim_keys": ["repo", "context", "ref"]}
    assert f"deploy jobs present: repo:{REPO}:environment:production:ref:refs/heads/main" in applied.stdout

    puts = [r for r in github.requests if r[0] == "PUT"]
    again = ci_github("oidc-subject", "--repo", REPO, "--apply", env=env)
    assert "already set" in again.stdout
    assert [r for r in github.requests if r[0] == "PUT"] == puts, "an unchanged template is not re-sent"


def test_oidc_subject_with_a_workflow_token_says_an_admin_is_needed(github: FakeGitHub) -> None:
    result = ci_github(
        "oidc-subject", "--repo", REPO, "--apply", env={"GITHUB_API_URL": github.url, "GITHUB_TOKEN": TOKEN}
    )
    assert result.returncode == 1
    assert "answered 403" in result.stderr and "repository admin" in result.stderr
    assert github.oidc_template == {"use_default": True}


def test_the_comment_shows_the_model_against_the_base_then_the_size_budget(
    github: FakeGitHub, runner_env: dict[str, str], tmp_path: Path
) -> None:
    from ci.model_report import TRAINED, Base, Comparison, render, rows, side

    budget = tmp_path / "budget.md"
    budget.write_text("### Lambda size budget: PASS\n\n198.4 MB of 262.1 MB\n")
    head = {"log_loss": 0.44, "baseline_log_loss": 0.66, "roc_auc": 0.85, "mae_true_p": 0.02, "ece": 0.012}
    base = {**head, "log_loss": 0.45, "ece": 0.015}
    training = load_config().training
    head_side, base_side = side({"sha256": "a" * 64, "metrics": head}), side({"sha256": "b" * 64, "metrics": base})
    comparison = Comparison(head_side, base_side, rows(head, base, training))
    model = tmp_path / "model-report.md"
    model.write_text(render(comparison, Base(TRAINED, "origin/main", "c" * 40, "as --base-ref names it")))

    posted = ci_github("comment", "--marker", MARKER, "--body", str(model), str(budget), env=runner_env)
    assert posted.returncode == 0, posted.stderr
    [ours] = github.marked(PR)
    body = ours["body"]
    assert body.index("## Model: this change against the base branch") < body.index("### Lambda size budget: PASS")
    assert "**Better on log loss (-0.0100), ECE (calibration) (-0.0030)** than the base" in body
    assert "| log loss | 0.4500 | 0.4400 | -0.0100 | better |" in body
    assert body.startswith(f"{MARKER}\n## Model") and body.endswith(f"198.4 MB of 262.1 MB{FOOTER}")

    model.unlink()  # the model job failed: the comment says so instead of keeping a stale model section
    ci_github("comment", "--marker", MARKER, "--body", str(model), str(budget), env=runner_env)
    [ours] = github.marked(PR)
    assert "### Model against the base branch: no report" in ours["body"]
    assert "did not produce `model-report.md`" in ours["body"] and "198.4 MB" in ours["body"]
