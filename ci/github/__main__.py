"""`python -m ci.github <subcommand>`: the workflow steps that talk to GitHub, runnable by hand.

One entry point so the workflows stay thin YAML; each subcommand's --help says what it does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ci.config import config_value
from ci.errors import PipelineError
from ci.github import deploy_guard, relock
from ci.github.api import DEFAULT_AUTHOR, GitHubApi, check_marker, repository_of, run_url, upsert_comment
from ci.github.runner import annotations_for_reports, append_outputs, gate, summary_text, write_summary_text


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

    fresh = sub.add_parser(
        "deploy-freshness", help="refuse a ref other than the branch; fresh=false when the commit is not its tip"
    )
    fresh.add_argument("--branch", default="main", help="the only branch that deploys (default: main)")
    fresh.add_argument("--ref-only", action="store_true", help="only refuse another branch; no API call")
    fresh.add_argument("--ref", default=None, help="the run's ref (default: GITHUB_REF)")
    fresh.add_argument("--sha", default=None, help="the run's commit (default: GITHUB_SHA)")
    fresh.add_argument("--repo", default=None, help="owner/name (default: GITHUB_REPOSITORY)")

    sub.add_parser(
        "aws-account",
        help="check AWS_ACCOUNT_ID (allowed-account-ids) is set and holds AWS_DEPLOY_ROLE_ARN; sets account-id",
    )

    oidc = sub.add_parser(
        "oidc-subject", help="check (or --apply) the OIDC subject template the deploy role's trust needs"
    )
    oidc.add_argument("--repo", default=None, help="owner/name (default: GITHUB_REPOSITORY)")
    oidc.add_argument("--apply", action="store_true", help="set the template when it differs (repository admin)")
    oidc.add_argument(
        "--environment", default=deploy_guard.DEFAULT_ENVIRONMENT, help="for the subject printed at the end"
    )
    oidc.add_argument("--branch", default=deploy_guard.DEFAULT_BRANCH, help="for the subject printed at the end")

    prefix = relock.BRANCH_PREFIX
    pr = sub.add_parser(
        "relock-pr", help="commit the re-locked files to a fixed branch, push it, and open or update its pull request"
    )
    pr.add_argument("--reports", type=Path, default=Path("build/reports"), help="reports of the re-lock run")
    pr.add_argument("--branch", default=prefix, help=f"the bot's branch, rewritten on every run ({prefix}[/NAME])")
    pr.add_argument("--base", default="main", help="the branch the pull request targets (checked out here)")
    pr.add_argument("--remote", default=None, help="git remote URL or path (default: the repository on GitHub)")
    pr.add_argument("--repo", default=None, help="owner/name (default: GITHUB_REPOSITORY)")
    pr.add_argument("--path", action="append", default=[], help="a file to commit (default: every .in file and lock)")
    return parser


# What each report is and which step writes it, for the note that replaces a report a run did not produce.
MISSING_REPORTS = {
    "budget.md": ("Lambda size budget", "the build or the budget check"),
    "model-report.md": ("Model against the base branch", "the build or the model report"),
}


def comment_markdown(bodies: list[Path]) -> str:
    """The reports, in order, as one comment; a report the run did not produce says so instead."""
    url = run_url()
    parts = []
    for body in bodies:
        if body.is_file():
            parts.append(body.read_text(encoding="utf-8"))
            continue
        title, step = MISSING_REPORTS.get(body.name, (body.name, "the step that writes it"))
        parts.append(
            f"### {title}: no report\n\n"
            f"The pipeline did not produce `{body.name}` in {f'[this run]({url})' if url else 'this run'}: "
            f"{step} stopped before writing it. Its annotations and log name the cause.\n"
        )
    return "\n\n".join(part.strip() for part in parts)


def run_comment(args: argparse.Namespace) -> int:
    marker = check_marker(args.marker)
    path = os.environ.get("GITHUB_EVENT_PATH", "")
    event = json.loads(Path(path).read_text(encoding="utf-8")) if path and Path(path).is_file() else {}
    pull = event.get("pull_request") or {}
    # The footer: which commit and run the comment describes, so a reader knows it is current.
    head, run = str((pull.get("head") or {}).get("sha") or "")[:7], os.environ.get("GITHUB_RUN_ID")
    footer = [f"for {head}" if head else "", f"by [run {run}]({run_url()})" if run else ""]
    markdown = comment_markdown(args.body)
    if head or run:
        markdown += (
            f"\n\n<sub>Updated {' '.join(p for p in footer if p)}; this comment is edited on every push.</sub>\n"
        )
    api, repository = GitHubApi.from_env(), repository_of(args.repo)
    number = args.pr if args.pr is not None else pull.get("number") or event.get("number")
    if not isinstance(number, int):
        raise PipelineError(
            "no pull-request number: not given with --pr and GITHUB_EVENT_PATH holds no pull_request event",
            "run it in a pull_request workflow, or pass --pr N",
        )
    action, where = upsert_comment(api, repository, number, marker, markdown, args.author or DEFAULT_AUTHOR)
    print(f"comment {action}: {where}")
    return 0


def run_annotate(args: argparse.Namespace) -> int:
    if not args.reports.is_dir():  # annotating never fails a step, but says why it has nothing to say
        missing = f"{args.reports} is not a directory: no reports to annotate (did the step that writes them run?)"
        print(missing, file=sys.stderr)
    annotations = annotations_for_reports(args.reports, args.check)
    for annotation in annotations:
        print(annotation.render())
    errors = sum(1 for a in annotations if a.level == "error")
    print(f"{errors} error annotation(s) from {args.reports}", file=sys.stderr)
    return 0


def run_summary(args: argparse.Namespace) -> int:
    target = write_summary_text(summary_text(args.files))
    if target is not None:
        print(f"appended {', '.join(map(str, args.files))} to the job summary")
    return 0


def run_config(args: argparse.Namespace) -> int:
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
    "gate": lambda args: gate(args.needs_env, args.require),
    "config": run_config,
    "deploy-freshness": deploy_guard.run_freshness,
    "aws-account": deploy_guard.run_account,
    "oidc-subject": deploy_guard.run_oidc_subject,
    "relock-pr": relock.run_relock_pr,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return HANDLERS[args.subcommand](args)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
