"""A small GitHub REST client over urllib (nothing to install), and the sticky pull-request comment; it honours
GITHUB_API_URL (GitHub Enterprise Server, or a local fake in the tests) and says what to fix when a call fails."""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ci.errors import PipelineError

_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="next"')

_FIX_BY_STATUS = {
    401: "the token was refused: pass the job's GITHUB_TOKEN (env GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }})",
    403: "give the job `permissions: pull-requests: write`; pull requests from forks get a read-only token",
    404: "check GITHUB_REPOSITORY and the pull-request number (and that the token can see the repository)",
}


@dataclass(frozen=True)
class GitHubApi:
    base_url: str
    token: str

    @classmethod
    def from_env(cls, purpose: str = "to write a comment") -> GitHubApi:
        token = os.environ.get("GITHUB_TOKEN", "")
        if not token:
            raise PipelineError(
                f"GITHUB_TOKEN is not set: the GitHub API needs a token {purpose}",
                "in the workflow step add `env: GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}`; locally, export a token",
            )
        return cls(os.environ.get("GITHUB_API_URL") or "https://api.github.com", token)

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base_url.rstrip("/") + path

    def request(
        self, method: str, path: str, body: Any = None, fixes: Mapping[int, str] | None = None
    ) -> tuple[Any, Mapping[str, str]]:
        """One call; returns (decoded JSON or None, response headers). `fixes` names the fix per status."""
        url = self.url(path)
        data = None if body is None else json.dumps(body).encode()
        sent_headers = {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {self.token}",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "forgetting-curve-ci",
            **({"Content-Type": "application/json"} if data is not None else {}),
        }
        req = urllib.request.Request(url, data=data, headers=sent_headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                raw = response.read()
                headers = {key.lower(): value for key, value in response.headers.items()}
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                payload = json.loads(raw)
                detail = str(payload.get("message", "")) if isinstance(payload, dict) else ""
            except ValueError:
                detail = raw.decode(errors="replace").strip()[:200]
            raise PipelineError(
                f"GitHub API {method} {url} answered {exc.code}{': ' + detail if detail else ''}",
                {**_FIX_BY_STATUS, **(fixes or {})}.get(
                    exc.code, "see the message above; GitHub's status page if it persists"
                ),
            ) from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise PipelineError(
                f"GitHub API {method} {url} could not be reached ({exc})",
                "check GITHUB_API_URL and the network; on github.com runners it is set for you",
            ) from exc
        return (json.loads(raw) if raw.strip() else None), headers

    def paginate(self, path: str) -> Iterator[dict[str, Any]]:
        """Every item of a list endpoint, page after page."""
        next_url: str | None = path
        while next_url:
            items, headers = self.request("GET", next_url)
            if not isinstance(items, list):
                raise PipelineError(f"GitHub API GET {self.url(next_url)} did not return a list", "check the path")
            yield from items
            match = _NEXT_LINK.search(headers.get("link", ""))
            next_url = match.group(1) if match else None


def repository_of(explicit: str | None) -> str:
    repository = explicit or os.environ.get("GITHUB_REPOSITORY", "")
    if repository.count("/") != 1:
        raise PipelineError(f"repository {repository!r} is not owner/name", "pass --repo owner/name")
    return repository


def repo_path(repository: str) -> str:
    return "/repos/" + "/".join(quote(part, safe="") for part in repository.split("/", 1))


def run_url(repository: str | None = None) -> str | None:
    """This workflow run's page, or None off a runner."""
    run = os.environ.get("GITHUB_RUN_ID")
    server = os.environ.get("GITHUB_SERVER_URL", "https://github.com")
    repository = repository or os.environ.get("GITHUB_REPOSITORY", "")
    return f"{server}/{repository}/actions/runs/{run}" if run else None


# The sticky comment: reviewers see one current report instead of one per push. Only a comment of the
# workflow's own bot is edited: anyone can paste the marker, and the report must not hijack their words.
# The GITHUB_TOKEN of a workflow writes as this app user (user.type "Bot").
DEFAULT_AUTHOR = "github-actions[bot]"
# GitHub rejects comment bodies longer than this many characters.
MAX_BODY_CHARS = 65536
TRUNCATED_NOTE = "\n\n_(truncated: the full report is in the job summary and the `report-budget` artifact)_\n"


def check_marker(marker: str) -> str:
    """An HTML comment: invisible in the rendered comment, unique to this report."""
    marker = marker.strip()
    if not (marker.startswith("<!--") and marker.endswith("-->") and len(marker) > len("<!---->")):
        raise PipelineError(
            f"comment marker {marker!r} is not an HTML comment",
            "use a hidden marker such as '<!-- size-budget -->'",
        )
    return marker


def sticky_body(marker: str, markdown: str) -> str:
    """marker + report, cut to what GitHub accepts (the note says where the rest is)."""
    body = f"{marker}\n{markdown.rstrip()}\n"
    if len(body) <= MAX_BODY_CHARS:
        return body
    return body[: MAX_BODY_CHARS - len(TRUNCATED_NOTE)] + TRUNCATED_NOTE


def upsert_comment(
    api: GitHubApi, repository: str, number: int, marker: str, markdown: str, author: str = DEFAULT_AUTHOR
) -> tuple[str, str]:
    """Update bot `author`'s comment carrying `marker` on pull request `number`, or create it: (action, URL or id)."""
    repo = repo_path(repository)
    body = sticky_body(marker, markdown)
    for comment in api.paginate(f"{repo}/issues/{number}/comments?per_page=100"):
        user = comment.get("user") or {}  # the bot's login and a Bot account: a person cannot be either
        written_by_bot = isinstance(user, dict) and user.get("login") == author and user.get("type") == "Bot"
        if marker not in str(comment.get("body") or "") or not written_by_bot:
            continue
        comment_id = int(comment["id"])
        if comment.get("body") == body:
            return "unchanged", str(comment.get("html_url") or comment_id)
        updated, _ = api.request("PATCH", f"{repo}/issues/comments/{comment_id}", {"body": body})
        return "updated", str(updated.get("html_url") or comment_id)
    created, _ = api.request("POST", f"{repo}/issues/{number}/comments", {"body": body})
    return "created", str(created.get("html_url") or int(created["id"]))
