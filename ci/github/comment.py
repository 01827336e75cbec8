"""One sticky pull-request comment: found by a hidden marker, updated in place, created only once.

Reviewers see a single, current size report instead of one comment per push. Only a comment the
workflow's own bot wrote is edited: anyone can paste the marker into a comment of their own, and
the report must not be written into (or be hijacked by) someone else's words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ci.errors import PipelineError
from ci.github.api import GitHubApi

# The GITHUB_TOKEN of a workflow writes as this app user (user.type "Bot").
DEFAULT_AUTHOR = "github-actions[bot]"
# GitHub rejects comment bodies longer than this many characters.
MAX_BODY_CHARS = 65536
TRUNCATED_NOTE = "\n\n_(truncated: the full report is in the job summary and the `report-budget` artifact)_\n"


@dataclass(frozen=True)
class CommentResult:
    action: str  # created | updated | unchanged
    comment_id: int
    url: str


def check_marker(marker: str) -> str:
    """The marker must be an HTML comment: invisible in the rendered comment, unique to this report."""
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


def written_by(comment: dict[str, Any], author: str) -> bool:
    """True for a comment of the bot `author`: its login and a Bot account (a person cannot be either)."""
    user = comment.get("user") or {}
    return isinstance(user, dict) and user.get("login") == author and user.get("type") == "Bot"


def upsert_comment(
    api: GitHubApi, repository: str, number: int, marker: str, markdown: str, author: str = DEFAULT_AUTHOR
) -> CommentResult:
    """Update the comment of bot `author` that carries `marker` on pull request `number`, or create it."""
    marker = check_marker(marker)
    owner_repo = "/".join(quote(part, safe="") for part in repository.split("/", 1))
    body = sticky_body(marker, markdown)
    for comment in api.paginate(f"/repos/{owner_repo}/issues/{number}/comments?per_page=100"):
        if marker not in str(comment.get("body") or "") or not written_by(comment, author):
            continue
        comment_id = int(comment["id"])
        if comment.get("body") == body:
            return CommentResult("unchanged", comment_id, str(comment.get("html_url", "")))
        updated, _ = api.request("PATCH", f"/repos/{owner_repo}/issues/comments/{comment_id}", {"body": body})
        return CommentResult("updated", comment_id, str(updated.get("html_url", "")))
    created, _ = api.request("POST", f"/repos/{owner_repo}/issues/{number}/comments", {"body": body})
    return CommentResult("created", int(created["id"]), str(created.get("html_url", "")))
