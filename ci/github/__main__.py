"""`python -m ci.github <subcommand>`: the workflow steps that talk to GitHub, runnable by hand.

One entry point so the workflows stay thin YAML; each subcommand's --help says what it does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ci.errors import PipelineError
from ci.github import deploy_guard, oidc, relock

SUBCOMMANDS = (
    "comment",
    "annotate",
    "summary",
    "gate",
    "config",
    *deploy_guard.HANDLERS,
    *oidc.HANDLERS,
    *relock.HANDLERS,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ci.github", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)

    comment = sub.add_parser("comment", help="post or update the sticky pull-request comment")
    comment.add_argument("--marker", required=True, help="hidden HTML comment that identifies the comment")
    comment.add_argument(
        "--body", type=Path, nargs="+", required=True, help="Markdown file(s) to post, in this order, as one comment"
    )
    comment.add_argument("--pr", type=int, default=None, help="pull-request number (default: from GITHUB_EVENT_PATH)")
    comment.add_argument("--repo", default=None, help="owner/name (default: GITHUB_REPOSITORY)")
    comment.add_argument(
        "--author", default=None, help="the bot whose comment may be edited (default: github-actions[bot])"
    )

    annotate = sub.add_parser("annotate", help="print GitHub annotations for failing reports")
    annotate.add_argument("reports", type=Path, help="folder of <check>.json reports (build/reports)")
    annotate.add_argument(
        "--check", nargs="+", default=[], metavar="CHECK", help="only these checks; a missing report is an error too"
    )

    summary = sub.add_parser("summary", help="append reports (<check>.json) and Markdown files to the job summary")
    summary.add_argument("files", type=Path, nargs="+", help="a <check>.json report is rendered; a .md is appended")

    gate = sub.add_parser("gate", help="fail unless every named job in the needs context succeeded")
    gate.add_argument("--require", nargs="+", required=True, metavar="JOB", help="jobs that must have succeeded")
    gate.add_argument("--needs-env", default="NEEDS", help="environment variable holding ${{ toJSON(needs) }}")

    config = sub.add_parser("config", help="write pipeline.toml values to $GITHUB_OUTPUT")
    config.add_argument("pairs", nargs="+", metavar="NAME=SECTION.KEY", help="e.g. region=deploy.region")
    deploy_guard.add_parsers(sub)
    oidc.add_parsers(sub)
    relock.add_parsers(sub)
    return parser


def _pr_number(explicit: int | None) -> int:
    if explicit is not None:
        return explicit
    event_path = os.environ.get("GITHUB_EVENT_PATH", "")
    if event_path and Path(event_path).is_file():
        event = json.loads(Path(event_path).read_text(encoding="utf-8"))
        number = (event.get("pull_request") or {}).get("number") or event.get("number")
        if isinstance(number, int):
            return number
    raise PipelineError(
        "no pull-request number: not given with --pr and GITHUB_EVENT_PATH holds no pull_request event",
        "run it in a pull_request workflow, or pass --pr N",
    )


def _repository(explicit: str | None) -> str:
    repository = explicit or os.environ.get("GITHUB_REPOSITORY", "")
    if repository.count("/") != 1:
        raise PipelineError(f"repository {repository!r} is not owner/name", "pass --repo owner/name")
    return repository


# What each report is, for the note that replaces a report a run did not produce.
REPORT_TITLES = {"budget.md": "Lambda size budget", "model-report.md": "Model against the base branch"}
REPORT_STEPS = {"budget.md": "the build or the budget check", "model-report.md": "the build or the model report"}


def _missing_report(body: Path) -> str:
    server = os.environ.get("GITHUB_SERVER_URL", "https://github.com")
    run = os.environ.get("GITHUB_RUN_ID")
    link = f"[this run]({server}/{os.environ.get('GITHUB_REPOSITORY', '')}/actions/runs/{run})" if run else "this run"
    title = REPORT_TITLES.get(body.name, body.name)
    step = REPORT_STEPS.get(body.name, "the step that writes it")
    return (
        f"### {title}: no report\n\n"
        f"The pipeline did not produce `{body.name}` in {link}: "
        f"{step} stopped before writing it. Its annotations and log name the cause.\n"
    )


def comment_markdown(bodies: list[Path]) -> str:
    """The reports, in order, as one comment; a report the run did not produce says so instead."""
    parts = [body.read_text(encoding="utf-8") if body.is_file() else _missing_report(body) for body in bodies]
    return "\n\n".join(part.strip() for part in parts)


def _footer() -> str:
    """Which commit and run the comment describes, so a reader knows it is current."""
    event_path = os.environ.get("GITHUB_EVENT_PATH", "")
    event = json.loads(Path(event_path).read_text(encoding="utf-8")) if Path(event_path).is_file() else {}
    head = str(((event.get("pull_request") or {}).get("head") or {}).get("sha") or "")[:7]
    run = os.environ.get("GITHUB_RUN_ID")
    if not (head or run):
        return ""
    server = os.environ.get("GITHUB_SERVER_URL", "https://github.com")
    where = f"[run {run}]({server}/{os.environ.get('GITHUB_REPOSITORY', '')}/actions/runs/{run})" if run else ""
    parts = [f"for {head}" if head else "", f"by {where}" if where else ""]
    return "\n\n<sub>Updated " + " ".join(p for p in parts if p) + "; this comment is edited on every push.</sub>\n"


def run_comment(args: argparse.Namespace) -> int:
    from ci.github.api import GitHubApi
    from ci.github.comment import DEFAULT_AUTHOR, check_marker, upsert_comment

    marker = check_marker(args.marker)
    markdown = comment_markdown(args.body) + _footer()
    result = upsert_comment(
        GitHubApi.from_env(), _repository(args.repo), _pr_number(args.pr), marker, markdown,
        author=args.author or DEFAULT_AUTHOR,
    )  # fmt: skip
    print(f"comment {result.action}: {result.url or result.comment_id}")
    return 0


def run_annotate(args: argparse.Namespace) -> int:
    from ci.github.annotate import annotations_for_reports

    if not args.reports.is_dir():  # annotating never fails a step, but says why it has nothing to say
        print(f"{args.reports} is not a directory: no reports to annotate (did the step that writes them run?)",
              file=sys.stderr)  # fmt: skip
    annotations = annotations_for_reports(args.reports, args.check)
    for annotation in annotations:
        print(annotation.render())
    errors = sum(1 for a in annotations if a.level == "error")
    print(f"{errors} error annotation(s) from {args.reports}", file=sys.stderr)
    return 0


def run_summary(args: argparse.Namespace) -> int:
    from ci.github.summary import write_summary

    target = write_summary(args.files)
    if target is not None:
        print(f"appended {', '.join(map(str, args.files))} to the job summary")
    return 0


def run_gate(args: argparse.Namespace) -> int:
    from ci.github.gate import evaluate, parse_needs, require_success
    from ci.github.summary import write_summary_text
    from ci.github.workflow_commands import append_outputs

    text = os.environ.get(args.needs_env)
    if text is None:
        raise PipelineError(
            f"environment variable {args.needs_env} is not set",
            f"in the step add `env: {args.needs_env}: ${{{{ toJSON(needs) }}}}`",
        )
    result = evaluate(parse_needs(text), args.require)
    write_summary_text(result.markdown())
    append_outputs({"verified": "true" if result.passed else "false"})
    require_success(result)
    return 0


def run_config(args: argparse.Namespace) -> int:
    from ci.config import config_value
    from ci.github.workflow_commands import append_outputs

    values = {}
    for pair in args.pairs:
        name, sep, dotted = pair.partition("=")
        section, dot, key = dotted.partition(".")
        value = config_value(section, key) if sep and dot and name else None
        if value is None:
            raise PipelineError(f"{pair!r} does not name a pipeline.toml value", "use NAME=SECTION.KEY")
        values[name] = value
    sys.stdout.write(append_outputs(values))
    return 0


HANDLERS = {
    "comment": run_comment,
    "annotate": run_annotate,
    "summary": run_summary,
    "gate": run_gate,
    "config": run_config,
}
HANDLERS.update({**deploy_guard.HANDLERS, **oidc.HANDLERS, **relock.HANDLERS})


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return HANDLERS[args.subcommand](args)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
