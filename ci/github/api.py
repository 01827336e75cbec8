"""How a step talks to GitHub: a urllib REST client (GITHUB_API_URL: Enterprise Server, or the tests' fake), the sticky
comment, and the runner's annotations, job summary and outputs from the report contract (stdout off a runner)."""

import json
import os
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple, Self
from urllib.parse import quote

from ci.errors import PipelineError
from ci.reports import findings_of

_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="next"')

_FIX_BY_STATUS = {
    401: "the token was refused: pass the job's GITHUB_TOKEN (env GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }})",
    403: "give the job `permissions: pull-requests: write`; pull requests from forks get a read-only token",
    404: "check GITHUB_REPOSITORY and the pull-request number (and that the token can see the repository)",
}


class GitHubApi(NamedTuple):
    base_url: str
    token: str
    repository: str  # owner/name

    @classmethod
    def from_env(cls, repository: str | None, purpose: str = "to write a comment") -> Self:
        repository = repository or os.environ.get("GITHUB_REPOSITORY", "")
        if repository.count("/") != 1:
            raise PipelineError(f"repository {repository!r} is not owner/name", "pass --repo owner/name")
        token = os.environ.get("GITHUB_TOKEN", "")
        if not token:
            raise PipelineError(
                f"GITHUB_TOKEN is not set: the GitHub API needs a token {purpose}",
                "in the workflow step add `env: GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}`; locally, export a token",
            )
        return cls(os.environ.get("GITHUB_API_URL") or "https://api.github.com", token, repository)

    @property
    def repo_path(self) -> str:
        return "/repos/" + "/".join(quote(part, safe="") for part in self.repository.split("/", 1))

    def request(
        self, method: str, path: str, body: Any = None, fixes: Mapping[int, str] | None = None
    ) -> tuple[Any, str | None]:
        """One call: (decoded JSON or None, the next page's URL if any). `fixes` names the fix per status."""
        url = path if path.startswith(("http://", "https://")) else self.base_url.rstrip("/") + path
        fix_by_status = {**_FIX_BY_STATUS, **(fixes or {})}
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
                next_page = _NEXT_LINK.search(response.headers.get("link", ""))
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                payload = json.loads(raw)
                detail = str(payload.get("message", "")) if isinstance(payload, dict) else ""
            except ValueError:
                detail = raw.decode(errors="replace").strip()[:200]
            raise PipelineError(
                f"GitHub API {method} {url} answered {exc.code}{': ' + detail if detail else ''}",
                fix_by_status.get(exc.code, "see the message above; GitHub's status page if it persists"),
            ) from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise PipelineError(
                f"GitHub API {method} {url} could not be reached ({exc})",
                "check GITHUB_API_URL and the network; on github.com runners it is set for you",
            ) from exc
        return (json.loads(raw) if raw.strip() else None), next_page.group(1) if next_page else None

    def paginate(self, path: str) -> Iterator[dict[str, Any]]:
        next_url: str | None = path
        while next_url:
            url = next_url
            items, next_url = self.request("GET", url)
            if not isinstance(items, list):
                raise PipelineError(f"GitHub API GET {url} did not return a list", "check the path")
            yield from items


def run_url(repository: str | None = None) -> str | None:
    run = os.environ.get("GITHUB_RUN_ID")
    server = os.environ.get("GITHUB_SERVER_URL", "https://github.com")
    repository = repository or os.environ.get("GITHUB_REPOSITORY", "")
    return f"{server}/{repository}/actions/runs/{run}" if run else None


# The sticky comment: one current report, not one per push; only the bot's is edited (anyone can paste the marker).
DEFAULT_AUTHOR = "github-actions[bot]"
MAX_BODY_CHARS = 65536  # GitHub rejects longer comment bodies
TRUNCATED_NOTE = "\n\n_(truncated: the full report is in the job summary and the `report-budget` artifact)_\n"


def sticky_body(marker: str, markdown: str) -> str:
    body = f"{marker}\n{markdown.rstrip()}\n"
    return body if len(body) <= MAX_BODY_CHARS else body[: MAX_BODY_CHARS - len(TRUNCATED_NOTE)] + TRUNCATED_NOTE


def upsert_comment(
    api: GitHubApi, number: int, marker: str, markdown: str, author: str = DEFAULT_AUTHOR
) -> tuple[str, str]:
    """Update bot `author`'s comment carrying `marker` on pull request `number`, or create it: (action, URL or id)."""
    repo = api.repo_path
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


MAX_PER_REPORT = 8  # GitHub shows at most 10 errors per step: keep each report's share readable
TITLES = {"error": "{check} check failed", "warning": "{check} check warning"}  # notices stay in the summary
MAX_SUMMARY_BYTES = 1_000_000  # GitHub refuses a step summary over 1 MiB; leave room for the other steps
MAX_ROWS = 50
ICONS = {"error": "❌", "warning": "⚠️", "notice": "ℹ️"}


def escape_data(text: str) -> str:
    """The runner's escaping: without it a multi-line message is cut at its first line."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


class Annotation(NamedTuple):
    level: str  # error | warning | notice
    message: str
    title: str | None = None
    file: str | None = None
    line: int | None = None

    def render(self) -> str:
        fields = {"file": self.file, "line": self.line, "title": self.title}
        props = [escape_data(f"{k}={v}").replace(":", "%3A").replace(",", "%2C") for k, v in fields.items() if v]
        return f"::{self.level}" + (" " + ",".join(props) if props else "") + f"::{escape_data(self.message)}"


def runner_file(variable: str) -> Path | None:
    return Path(value) if (value := os.environ.get(variable)) else None


def append_outputs(values: Mapping[str, str]) -> str:
    for key, value in values.items():
        if "\n" in value or "\r" in value:
            raise ValueError(f"output {key!r} must be a single line")
    text = "".join(f"{key}={value}\n" for key, value in values.items())
    target = runner_file("GITHUB_OUTPUT")
    if target is not None:
        with target.open("a", encoding="utf-8") as handle:
            handle.write(text)
    return text


def write_summary_text(text: str) -> Path | None:
    target = runner_file("GITHUB_STEP_SUMMARY")
    if target is None:
        sys.stdout.write(text)
        return None
    with target.open("a", encoding="utf-8") as handle:
        handle.write(text + "\n")
    return target


def read_json_report(path: Path) -> dict[str, Any] | str:
    """The report, or what is wrong with it (a step reading reports never stops at a damaged one)."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"is not readable JSON ({exc})"
    return report if isinstance(report, dict) else "does not hold a report object"


def annotations_for_reports(reports: Path, checks: Iterable[str] = ()) -> list[Annotation]:
    paths = [reports / f"{check}.json" for check in checks] or sorted(reports.glob("*.json"))
    annotations: list[Annotation] = []
    for path in paths:
        if not path.is_file():
            problem = (
                f"the {path.stem} check wrote no report ({path}): it stopped before judging, "
                "see the error printed by its step above"
            )
            annotations.append(Annotation("error", problem, f"{path.stem} check did not finish"))
            continue
        report = read_json_report(path)
        if isinstance(report, str):
            annotations.append(Annotation("error", f"{path} {report}", "unreadable report"))
            continue
        check = str(report.get("check") or path.stem)
        found = [f for f in findings_of(report, check) if f.severity in TITLES]
        for f in found[: MAX_PER_REPORT - 1] if len(found) > MAX_PER_REPORT else found:
            message = f.message + (f"\nfix: {f.fix}" if f.fix else "")
            annotations.append(Annotation(f.severity, message, TITLES[f.severity].format(check=check), f.file, f.line))
        if len(found) > MAX_PER_REPORT:
            more = f"and {len(found) - MAX_PER_REPORT + 1} more: see build/reports/{check}.json"
            annotations.append(Annotation("error", more, f"{check} check failed"))
    return annotations


def summary_part(path: Path) -> str:
    if not path.is_file():
        return f"> **{path}** was not produced: its check stopped before writing it (see the log).\n"
    if path.suffix != ".json":
        return path.read_text(encoding="utf-8").rstrip() + "\n"
    report = read_json_report(path)
    if isinstance(report, str):
        return f"> **{path}** {report}: rerun its check.\n"
    check = str(report.get("check") or path.stem)
    findings = findings_of(report, check)
    errors = sum(1 for f in findings if f.severity == "error")
    verdict = "✅ passed" if report.get("passed") is True else f"❌ FAILED ({errors} error(s))"
    lines = [f"### {check}: {verdict}", ""]
    artifacts = report.get("artifacts") or {}
    if isinstance(artifacts, dict) and artifacts:
        judged = ", ".join(f"`{name}` {str(digest)[:12]}" for name, digest in sorted(artifacts.items()))
        lines += [f"Judged: {judged} (sha256 of the bytes read).", ""]
    if not findings:
        return "\n".join([*lines, "No findings.", ""])
    lines += ["| | Where | Finding | Fix |", "|---|---|---|---|"]
    for finding in findings[:MAX_ROWS]:
        where = f"{finding.file}:{finding.line}" if finding.line else finding.file
        where = f"`{where}`" if finding.file else ""
        lines.append(
            f"| {ICONS[finding.severity]} | {where} | {table_cell(finding.message)} | {table_cell(finding.fix)} |"
        )
    if len(findings) > MAX_ROWS:
        lines.append(f"\n_and {len(findings) - MAX_ROWS} more in `{path.name}`_")
    return "\n".join([*lines, ""])


def table_cell(text: str, newline: str = "<br>") -> str:
    return text.replace("|", "\\|").replace("\r", "").replace("\n", newline)
