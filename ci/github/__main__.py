"""`python -m ci.github <subcommand>`: the workflow steps that talk to GitHub, runnable by hand.

Standard library only, so a job runs them before installing anything. Before deploy.yml touches production: the run's
branch and tip (runs finish out of order), the AWS account it may sign in to, and the OIDC subject the role trusts."""

import argparse
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from ci.config import config_value
from ci.errors import CheckFailedError, PipelineError
from ci.github import api, relock

SHA = re.compile(r"^[0-9a-f]{40}$")
ACCOUNT_ID = re.compile(r"^[0-9]{12}$")
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(?P<account>[0-9]{12}):role/[\w+=,.@/-]+$")
_READ_FIXES = {
    403: "give the job `permissions: contents: read` and pass its token (env GITHUB_TOKEN: secrets.GITHUB_TOKEN)",
    404: "check GITHUB_REPOSITORY and --branch (and that the token can read the repository)",
}
# GitHub's default subject with an environment names no branch, so any pushed branch could match it.
CLAIM_KEYS = ["repo", "context", "ref"]  # in the order of the subject's parts
SUBJECT_TEMPLATE = {"use_default": False, "include_claim_keys": CLAIM_KEYS}
DEFAULT_ENVIRONMENT = "production"  # infra/template.yaml DeployEnvironment, deploy.yml's environment
DEFAULT_BRANCH = "main"  # infra/template.yaml DeployBranch, deploy.yml's push branch
_ADMIN_FIXES = {
    401: "export GITHUB_TOKEN: a token of a repository admin (a workflow's own GITHUB_TOKEN cannot do this)",
    403: "use a token of a repository admin: classic with the `repo` scope, or fine-grained with "
    "Actions: read and write on this repository",
    404: "check --repo owner/name, and that the token is a repository admin's",
}


def run_freshness(args: argparse.Namespace) -> int:
    """Production deploys only from `branch` (another ref is an error, not a silent skip), and only its tip."""
    ref, branch, sha = args.ref, args.branch, args.sha
    if ref != f"refs/heads/{branch}":  # before asking for a token: the wrong branch needs no API call
        raise PipelineError(
            f"deploy.yml ran on {ref or 'no ref (GITHUB_REF is empty)'}, but production deploys only from "
            f"{branch}: nothing was deployed",
            f"run the workflow from {branch} (Actions > deploy > Run workflow > Use workflow from: {branch}), "
            "or merge the branch first",
        )
    if args.ref_only:
        print(f"{ref}: runs from {branch} may deploy")
        return 0
    client = api.GitHubApi.from_env(args.repo, purpose="to read the branch's tip")
    if not SHA.match(sha):
        raise PipelineError(f"commit {sha!r} is not a 40-hex SHA", "pass --sha (on a runner GITHUB_SHA is set)")
    found, _ = client.request("GET", f"{client.repo_path}/git/ref/heads/{quote(branch)}", fixes=_READ_FIXES)
    head = (found or {}).get("object", {}).get("sha") if isinstance(found, dict) else None
    if not isinstance(head, str) or not SHA.match(head):
        raise PipelineError(
            f"GitHub answered no commit for refs/heads/{branch} of {client.repository}",
            f"check that {branch} exists in {client.repository}",
        )
    if sha == head:
        api.write_summary_text(f"### Deploying {sha[:7]}: it is the tip of {branch}\n")
        print(f"{sha} is the tip of {branch}: deploying it")
    else:
        why = (
            f"{branch} is at {head[:7]} now. Deploying {sha[:7]} would replace a newer commit in "
            f"production; the run for {head[:7]} (queued behind this one) deploys it.\n"
        )
        api.write_summary_text(f"### Deploy skipped: {sha[:7]} is no longer the tip of {branch}\n\n{why}")
        print(api.Annotation("notice", why.strip(), f"Deploy skipped: a newer commit is on {branch}").render())
    api.append_outputs({"fresh": "true" if sha == head else "false", "head": head})
    return 0


def run_account(_args: argparse.Namespace) -> int:
    account_id, role_arn = os.environ.get("AWS_ACCOUNT_ID", ""), os.environ.get("AWS_DEPLOY_ROLE_ARN", "")
    if not ACCOUNT_ID.match(account_id):
        raise PipelineError(
            f"AWS_ACCOUNT_ID is {account_id!r}, not a 12-digit AWS account id: allowed-account-ids would not "
            "check which account the deploy signs in to",
            "set the variable AWS_ACCOUNT_ID (Settings > Environments > production) to the account of the stack",
        )
    if not (match := ROLE_ARN.match(role_arn)):
        raise PipelineError(
            f"AWS_DEPLOY_ROLE_ARN is {role_arn!r}, not an IAM role ARN",
            "set the variable AWS_DEPLOY_ROLE_ARN to the stack output DeployRoleArn (python -m ci bootstrap prints it)",
        )
    if match.group("account") != account_id:
        raise PipelineError(
            f"the deploy role {role_arn} is in account {match.group('account')}, but AWS_ACCOUNT_ID allows only "
            f"{account_id}",
            "point both variables at the account that holds the stack (python -m ci bootstrap prints the role)",
        )
    api.append_outputs({"account-id": account_id})
    print(f"deploy role is in account {account_id}; the AWS sign-in accepts only that account", file=sys.stderr)
    return 0


def expected_subject(repository: str, environment: str = DEFAULT_ENVIRONMENT, branch: str = DEFAULT_BRANCH) -> str:
    return f"repo:{repository}:environment:{environment}:ref:refs/heads/{branch}"


def is_customised(setting: object) -> bool:
    return isinstance(setting, dict) and all(setting.get(key) == value for key, value in SUBJECT_TEMPLATE.items())


def run_oidc_subject(args: argparse.Namespace) -> int:
    """Without --apply, a repository still on another template is an error; an admin applies it once."""
    client = api.GitHubApi.from_env(args.repo, purpose="of a repository admin to read the OIDC subject template")
    repository = client.repository
    path = f"{client.repo_path}/actions/oidc/customization/sub"
    current, _ = client.request("GET", path, fixes=_ADMIN_FIXES)
    state = "already set"
    if not is_customised(current):
        if not args.apply:
            raise PipelineError(
                f"the OIDC subject of {repository} is {current!r}, not use_default=false with include_claim_keys "
                f"{CLAIM_KEYS}: its deploy job cannot assume the deploy role",
                f"run `python -m ci.github oidc-subject --repo {repository} --apply` with a repository admin's token",
            )
        client.request("PUT", path, SUBJECT_TEMPLATE, fixes=_ADMIN_FIXES)
        after, _ = client.request("GET", path, fixes=_ADMIN_FIXES)
        if not is_customised(after):
            raise PipelineError(
                f"GitHub accepted the OIDC subject template of {repository} but now answers {after!r}",
                "check the repository's (and organisation's) OIDC settings by hand, then rerun",
            )
        state = "applied"
    print(f"OIDC subject template of {repository}: {state} (include_claim_keys {CLAIM_KEYS})")
    print(f"deploy jobs present: {expected_subject(repository, args.environment, args.branch)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ci.github", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)

    def command(name: str, run: Callable[[argparse.Namespace], int], summary: str) -> argparse.ArgumentParser:
        found = sub.add_parser(name, help=summary)
        found.set_defaults(run=run)
        return found

    comment = command("comment", run_comment, "post or update the sticky pull-request comment")
    comment.add_argument("--marker", required=True, help="hidden HTML comment that identifies the comment")
    comment.add_argument(
        "--body", type=Path, nargs="+", required=True, help="Markdown file(s) to post, in this order, as one comment"
    )
    comment.add_argument("--pr", type=int, help="pull-request number (default: from GITHUB_EVENT_PATH)")
    comment.add_argument("--author", help="the bot whose comment may be edited (default: github-actions[bot])")

    annotate = command("annotate", run_annotate, "print GitHub annotations for failing reports")
    annotate.add_argument("reports", type=Path, help="folder of <check>.json reports (build/reports)")
    annotate.add_argument(
        "--check", nargs="+", default=[], metavar="CHECK", help="only these checks; a missing report is an error too"
    )

    summary = command("summary", run_summary, "append reports (<check>.json) and Markdown files to the job summary")
    summary.add_argument("files", type=Path, nargs="+", help="a <check>.json report is rendered; a .md is appended")

    gate = command("gate", run_gate, "fail unless every named job in the needs context succeeded")
    gate.add_argument("--require", nargs="+", required=True, metavar="JOB", help="jobs that must have succeeded")
    gate.add_argument("--needs-env", default="NEEDS", help="environment variable holding ${{ toJSON(needs) }}")

    config = command("config", run_config, "write pipeline.toml values to $GITHUB_OUTPUT")
    config.add_argument("pairs", nargs="+", metavar="NAME=SECTION.KEY", help="e.g. region=deploy.region")

    fresh = command(
        "deploy-freshness",
        run_freshness,
        "refuse a ref other than the branch; fresh=false when the commit is not its tip",
    )
    fresh.add_argument("--branch", default="main", help="the only branch that deploys (default: main)")
    fresh.add_argument("--ref-only", action="store_true", help="only refuse another branch; no API call")
    fresh.add_argument("--ref", default=os.environ.get("GITHUB_REF", ""), help="the run's ref (default: GITHUB_REF)")
    fresh.add_argument("--sha", default=os.environ.get("GITHUB_SHA", ""), help="the run's commit (default: GITHUB_SHA)")

    command(
        "aws-account",
        run_account,
        "check AWS_ACCOUNT_ID (allowed-account-ids) is set and holds AWS_DEPLOY_ROLE_ARN; sets account-id",
    )

    oidc = command(
        "oidc-subject", run_oidc_subject, "check (or --apply) the OIDC subject template the deploy role's trust needs"
    )
    oidc.add_argument("--apply", action="store_true", help="set the template when it differs (repository admin)")
    oidc.add_argument("--environment", default=DEFAULT_ENVIRONMENT, help="for the subject printed at the end")
    oidc.add_argument("--branch", default=DEFAULT_BRANCH, help="for the subject printed at the end")

    prefix = relock.BRANCH_PREFIX
    pr = command(
        "relock-pr",
        relock.run_relock_pr,
        "commit the re-locked files to a fixed branch, push it, and open or update its pull request",
    )
    pr.add_argument("--reports", type=Path, default=Path("build/reports"), help="reports of the re-lock run")
    pr.add_argument("--branch", default=prefix, help=f"the bot's branch, rewritten on every run ({prefix}[/NAME])")
    pr.add_argument("--base", default="main", help="the branch the pull request targets (checked out here)")
    pr.add_argument("--remote", help="git remote URL or path (default: the repository on GitHub)")
    pr.add_argument("--path", action="append", default=[], help="a file to commit (default: every .in file and lock)")
    for on_github in (comment, fresh, oidc, pr):
        on_github.add_argument("--repo", help="owner/name (default: GITHUB_REPOSITORY)")
    return parser


MISSING_REPORTS = {
    "budget.md": ("Lambda size budget", "the build or the budget check"),
    "model-report.md": ("Model against the base branch", "the build or the model report"),
}


def run_comment(args: argparse.Namespace) -> int:
    marker = args.marker.strip()  # an HTML comment: invisible in the rendered comment, unique to this report
    if not (marker.startswith("<!--") and marker.endswith("-->") and len(marker) > len("<!---->")):
        raise PipelineError(
            f"comment marker {marker!r} is not an HTML comment", "use a hidden marker such as '<!-- size-budget -->'"
        )
    path = os.environ.get("GITHUB_EVENT_PATH", "")
    url = api.run_url()
    event = json.loads(Path(path).read_text(encoding="utf-8")) if path and Path(path).is_file() else {}
    pull = event.get("pull_request") or {}
    parts = []  # the reports, in order, as one comment; a report the run did not produce says so instead
    for body in args.body:
        if body.is_file():
            parts.append(body.read_text(encoding="utf-8").strip())
            continue
        title, step = MISSING_REPORTS.get(body.name, (body.name, "the step that writes it"))
        parts.append(
            f"### {title}: no report\n\n"
            f"The pipeline did not produce `{body.name}` in {f'[this run]({url})' if url else 'this run'}: "
            f"{step} stopped before writing it. Its annotations and log name the cause."
        )
    markdown = "\n\n".join(parts)
    # The footer: which commit and run the comment describes, so a reader knows it is current.
    head, run = str((pull.get("head") or {}).get("sha") or "")[:7], os.environ.get("GITHUB_RUN_ID")
    footer = [f"for {head}"] if head else []
    footer += [f"by [run {run}]({url})"] if run else []
    if footer:
        markdown += f"\n\n<sub>Updated {' '.join(footer)}; this comment is edited on every push.</sub>\n"
    client = api.GitHubApi.from_env(args.repo)
    number = args.pr if args.pr is not None else pull.get("number") or event.get("number")
    if not isinstance(number, int):
        raise PipelineError(
            "no pull-request number: not given with --pr and GITHUB_EVENT_PATH holds no pull_request event",
            "run it in a pull_request workflow, or pass --pr N",
        )
    action, where = api.upsert_comment(client, number, marker, markdown, args.author or api.DEFAULT_AUTHOR)
    print(f"comment {action}: {where}")
    return 0


def run_annotate(args: argparse.Namespace) -> int:
    if not args.reports.is_dir():  # annotating never fails a step, but says why it has nothing to say
        missing = f"{args.reports} is not a directory: no reports to annotate (did the step that writes them run?)"
        print(missing, file=sys.stderr)
    annotations = api.annotations_for_reports(args.reports, args.check)
    for annotation in annotations:
        print(annotation.render())
    errors = sum(1 for a in annotations if a.level == "error")
    print(f"{errors} error annotation(s) from {args.reports}", file=sys.stderr)
    return 0


def run_summary(args: argparse.Namespace) -> int:
    text = "\n".join(map(api.summary_part, args.files))
    encoded = text.encode()
    if len(encoded) > api.MAX_SUMMARY_BYTES:
        text = encoded[: api.MAX_SUMMARY_BYTES].decode(errors="ignore") + "\n\n_(truncated)_\n"
    if api.write_summary_text(text) is not None:  # None: printed, not on a runner
        print(f"appended {', '.join(map(str, args.files))} to the job summary")
    return 0


def run_gate(args: argparse.Namespace) -> int:
    """The verify workflow's last job: a skipped job does not fail a reusable workflow, so anything but success does."""
    needs_text = os.environ.get(args.needs_env)
    if needs_text is None:
        raise PipelineError(
            f"environment variable {args.needs_env} is not set",
            f"in the step add `env: {args.needs_env}: ${{{{ toJSON(needs) }}}}`",
        )
    try:
        needs = json.loads(needs_text)
    except ValueError as exc:
        raise PipelineError(f"the needs context is not JSON ({exc})", "pass ${{ toJSON(needs) }}") from exc
    if not isinstance(needs, dict):
        raise PipelineError("the needs context is not a JSON object", "pass ${{ toJSON(needs) }}")
    results = {}
    for job in args.require:
        entry = needs.get(job)
        results[job] = str(entry.get("result", "missing")) if isinstance(entry, dict) else "missing"
    passed = all(result == "success" for result in results.values())
    icon = {"success": "✅", "failure": "❌", "cancelled": "⏹️", "skipped": "⏭️"}
    rows = [f"| {job} | {icon.get(result, '❓')} {result} |" for job, result in results.items()]
    verdict = "all checks passed" if passed else "NOT verified: deploy is blocked"
    api.write_summary_text("\n".join([f"### Verify: {verdict}", "", "| job | result |", "|---|---|", *rows, ""]))
    api.append_outputs({"verified": "true" if passed else "false"})
    if not passed:
        failed = ", ".join(f"{job} ({state})" for job, state in results.items() if state != "success")
        raise CheckFailedError(
            f"not verified: {failed}",
            "open the failed jobs above; their annotations name the cause. Nothing is deployed until all pass",
        )
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
    sys.stdout.write(api.append_outputs(values))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
