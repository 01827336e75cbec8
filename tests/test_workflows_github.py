"""`python -m ci.github`: the sticky comment over real HTTP, workflow-command escaping, the gate.

GitHub is unreachable here, so the comment command talks to a small fake of the REST API on
127.0.0.1 (list with Link pagination, update, create, token check): a real HTTP exchange with
the same paths, verbs, headers and JSON as api.github.com, selected through GITHUB_API_URL.
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
from ci.github.comment import MAX_BODY_CHARS, sticky_body
from ci.github.workflow_commands import Annotation
from ci.paths import REPO_ROOT

TOKEN = "ghs_test_token"
READ_ONLY_TOKEN = "ghs_read_only"
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
    next_id: int = 1000
    url: str = ""

    def add(self, number: int, body: str, user: str = "someone") -> dict[str, Any]:
        self.next_id += 1
        comment = {
            "id": self.next_id,
            "body": body,
            "user": {"login": user},
            "html_url": f"https://github.example/{REPO}/pull/{number}#issuecomment-{self.next_id}",
        }
        self.comments.setdefault(number, []).append(comment)
        return comment

    def marked(self, number: int) -> list[dict[str, Any]]:
        return [c for c in self.comments.get(number, []) if MARKER in c["body"]]


def make_handler(state: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    list_path = re.compile(rf"^/repos/{REPO}/issues/(\d+)/comments$")
    item_path = re.compile(rf"^/repos/{REPO}/issues/comments/(\d+)$")

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

        def authorized(self, write: bool) -> bool:
            auth = self.headers.get("Authorization", "")
            if auth not in (f"Bearer {TOKEN}", f"Bearer {READ_ONLY_TOKEN}"):
                self.reply(401, {"message": "Bad credentials"})
                return False
            if write and auth == f"Bearer {READ_ONLY_TOKEN}":
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
            match = list_path.match(self.path)
            if not match:
                return self.reply(404, {"message": "Not Found"})
            if not self.authorized(write=True):
                return None
            comment = state.add(int(match.group(1)), self.body()["body"], user="github-actions[bot]")
            return self.reply(201, comment)

        def do_PATCH(self) -> None:
            state.requests.append(("PATCH", self.path))
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
    ours = github.add(PR, f"{MARKER}\nold report")
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
    github.add(PR, f"{MARKER}\n### Lambda size budget: PASS (from an earlier push)")
    result = comment(runner_env, tmp_path / "missing" / "budget.md")
    assert result.returncode == 0, result.stderr
    [ours] = github.marked(PR)
    assert "earlier push" not in ours["body"]
    assert "did not produce `budget.md`" in ours["body"]
    assert "https://github.example/octo/forgetting-curve/actions/runs/777" in ours["body"]


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
