"""What deploy.yml checks before it touches production, as commands a person can run.

deploy-freshness refuses a run off main and skips one whose commit is no longer main's tip (runs finish out
of order); aws-account refuses an empty or wrong account, which would silently turn the action's check off.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass
from urllib.parse import quote

from ci.errors import PipelineError
from ci.github.api import GitHubApi

SHA = re.compile(r"^[0-9a-f]{40}$")
ACCOUNT_ID = re.compile(r"^[0-9]{12}$")
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(?P<account>[0-9]{12}):role/[\w+=,.@/-]+$")
_READ_FIXES = {
    403: "give the job `permissions: contents: read` and pass its token (env GITHUB_TOKEN: secrets.GITHUB_TOKEN)",
    404: "check GITHUB_REPOSITORY and --branch (and that the token can read the repository)",
}


@dataclass(frozen=True)
class Freshness:
    branch: str
    sha: str  # the commit this run verified
    head: str  # the branch's tip now

    @property
    def fresh(self) -> bool:
        return self.sha == self.head

    def markdown(self) -> str:
        if self.fresh:
            return f"### Deploying {self.sha[:7]}: it is the tip of {self.branch}\n"
        return (
            f"### Deploy skipped: {self.sha[:7]} is no longer the tip of {self.branch}\n\n"
            f"{self.branch} is at {self.head[:7]} now. Deploying {self.sha[:7]} would replace a newer commit in "
            f"production; the run for {self.head[:7]} (queued behind this one) deploys it.\n"
        )


def require_branch(ref: str, branch: str) -> None:
    """Production deploys only from `branch`; any other ref is an error, not a silent skip."""
    if ref != f"refs/heads/{branch}":
        raise PipelineError(
            f"deploy.yml ran on {ref or 'no ref (GITHUB_REF is empty)'}, but production deploys only from "
            f"{branch}: nothing was deployed",
            f"run the workflow from {branch} (Actions > deploy > Run workflow > Use workflow from: {branch}), "
            "or merge the branch first",
        )


def branch_head(api: GitHubApi, repository: str, branch: str) -> str:
    """The commit the branch points at now, as GitHub has it."""
    owner_repo = "/".join(quote(part, safe="") for part in repository.split("/", 1))
    ref, _ = api.request("GET", f"/repos/{owner_repo}/git/ref/heads/{quote(branch)}", fixes=_READ_FIXES)
    sha = (ref or {}).get("object", {}).get("sha") if isinstance(ref, dict) else None
    if not isinstance(sha, str) or not SHA.match(sha):
        raise PipelineError(
            f"GitHub answered no commit for refs/heads/{branch} of {repository}",
            f"check that {branch} exists in {repository}",
        )
    return sha


def freshness(api: GitHubApi, repository: str, branch: str, ref: str, sha: str) -> Freshness:
    require_branch(ref, branch)
    if not SHA.match(sha):
        raise PipelineError(f"commit {sha!r} is not a 40-hex SHA", "pass --sha (on a runner GITHUB_SHA is set)")
    return Freshness(branch, sha, branch_head(api, repository, branch))


def check_account(account_id: str, role_arn: str) -> str:
    """The account allowed-account-ids pins; refuses an unset value or a role in another account."""
    if not ACCOUNT_ID.match(account_id):
        raise PipelineError(
            f"AWS_ACCOUNT_ID is {account_id!r}, not a 12-digit AWS account id: allowed-account-ids would not "
            "check which account the deploy signs in to",
            "set the variable AWS_ACCOUNT_ID (Settings > Environments > production) to the account of the stack",
        )
    match = ROLE_ARN.match(role_arn)
    if not match:
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
    return account_id


# --- commands ------------------------------------------------------------------------------------


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def run_freshness(args: argparse.Namespace) -> int:
    from ci.github.summary import write_summary_text
    from ci.github.workflow_commands import Annotation, append_outputs

    ref = args.ref if args.ref is not None else os.environ.get("GITHUB_REF", "")
    if args.ref_only:
        require_branch(ref, args.branch)
        print(f"{ref}: runs from {args.branch} may deploy")
        return 0
    repository = args.repo or os.environ.get("GITHUB_REPOSITORY", "")
    if repository.count("/") != 1:
        raise PipelineError(f"repository {repository!r} is not owner/name", "pass --repo owner/name")
    sha = args.sha if args.sha is not None else os.environ.get("GITHUB_SHA", "")
    require_branch(ref, args.branch)  # before asking for a token: the wrong branch needs no API call
    api = GitHubApi.from_env(purpose="to read the branch's tip")
    result = freshness(api, repository, args.branch, ref, sha)
    write_summary_text(result.markdown())
    append_outputs({"fresh": "true" if result.fresh else "false", "head": result.head})
    if result.fresh:
        print(f"{result.sha} is the tip of {result.branch}: deploying it")
    else:
        title = "Deploy skipped: a newer commit is on " + result.branch
        print(Annotation("notice", result.markdown().split("\n", 2)[2].strip(), title).render())
    return 0


def run_account(args: argparse.Namespace) -> int:
    from ci.github.workflow_commands import append_outputs

    account = check_account(os.environ.get("AWS_ACCOUNT_ID", ""), os.environ.get("AWS_DEPLOY_ROLE_ARN", ""))
    append_outputs({"account-id": account})
    print(f"deploy role is in account {account}; the AWS sign-in accepts only that account", file=sys.stderr)
    return 0


HANDLERS = {"deploy-freshness": run_freshness, "aws-account": run_account}
