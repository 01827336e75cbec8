"""A small GitHub REST client over urllib: enough for issue comments, nothing to install.

It honours GITHUB_API_URL (GitHub Enterprise Server, or a local fake in the tests) and
follows `Link: <...>; rel="next"` pagination. Failures become PipelineErrors that say what to fix.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ci.errors import PipelineError

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="next"')

_FIX_BY_STATUS = {
    401: "the token was refused: pass the job's GITHUB_TOKEN (env GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }})",
    403: "give the job `permissions: pull-requests: write`; pull requests from forks get a read-only token",
    404: "check GITHUB_REPOSITORY and the pull-request number (and that the token can see the repository)",
}


class GitHubApiError(PipelineError):
    """The API answered with an error status, or could not be reached."""

    def __init__(self, problem: str, fix: str, status: int | None = None) -> None:
        super().__init__(problem, fix)
        self.status = status


@dataclass(frozen=True)
class GitHubApi:
    base_url: str
    token: str
    timeout_s: float = 30.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, purpose: str = "to write a comment") -> GitHubApi:
        env = os.environ if environ is None else environ
        token = env.get("GITHUB_TOKEN", "")
        if not token:
            raise PipelineError(
                f"GITHUB_TOKEN is not set: the GitHub API needs a token {purpose}",
                "in the workflow step add `env: GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}`; locally, export a token",
            )
        return cls(base_url=env.get("GITHUB_API_URL") or DEFAULT_API_URL, token=token)

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base_url.rstrip("/") + path

    def request(
        self, method: str, path: str, body: Any = None, fixes: Mapping[int, str] | None = None
    ) -> tuple[Any, Mapping[str, str]]:
        """One call; returns (decoded JSON or None, response headers). `fixes` names the fix per status."""
        url = self.url(path)
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Accept", "application/vnd.github+json")
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("X-GitHub-Api-Version", API_VERSION)
        req.add_header("User-Agent", "forgetting-curve-ci")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as response:
                raw = response.read()
                headers = {key.lower(): value for key, value in response.headers.items()}
        except urllib.error.HTTPError as exc:
            detail = _error_message(exc.read())
            raise GitHubApiError(
                f"GitHub API {method} {url} answered {exc.code}{': ' + detail if detail else ''}",
                {**_FIX_BY_STATUS, **(fixes or {})}.get(
                    exc.code, "see the message above; GitHub's status page if it persists"
                ),
                status=exc.code,
            ) from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise GitHubApiError(
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
                raise GitHubApiError(f"GitHub API GET {self.url(next_url)} did not return a list", "check the path")
            yield from items
            match = _NEXT_LINK.search(headers.get("link", ""))
            next_url = match.group(1) if match else None


def _error_message(raw: bytes) -> str:
    try:
        payload = json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace").strip()[:200]
    return str(payload.get("message", "")) if isinstance(payload, dict) else ""
