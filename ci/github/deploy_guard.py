"""What deploy.yml checks before it touches production, as commands a person can run: the run's branch and tip
(runs finish out of order), the AWS account it may sign in to, and the OIDC subject the deploy role trusts."""

from __future__ import annotations

import argparse
import os
import re
import sys
from urllib.parse import quote

from ci.errors import PipelineError
from ci.github.api import GitHubApi, repo_path, repository_of
from ci.github.runner import Annotation, append_outputs, write_summary_text

SHA = re.compile(r"^[0-9a-f]{40}$")
ACCOUNT_ID = re.compile(r"^[0-9]{12}$")
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(?P<account>[0-9]{12}):role/[\w+=,.@/-]+$")
_READ_FIXES = {
    403: "give the job `permissions: contents: read` and pass its token (env GITHUB_TOKEN: secrets.GITHUB_TOKEN)",
    404: "check GITHUB_REPOSITORY and --branch (and that the token can read the repository)",
}
# GitHub's default subject with an environment names no branch, so any pushed branch could match it.
CLAIM_KEYS = ["repo", "context", "ref"]  # in the order of the subject's parts
DEFAULT_ENVIRONMENT = "production"  # infra/template.yaml DeployEnvironment, deploy.yml's environment
DEFAULT_BRANCH = "main"  # infra/template.yaml DeployBranch, deploy.yml's push branch
_ADMIN_FIXES = {
    401: "export GITHUB_TOKEN: a token of a repository admin (a workflow's own GITHUB_TOKEN cannot do this)",
    403: "use a token of a repository admin: classic with the `repo` scope, or fine-grained with "
    "Actions: read and write on this repository",
    404: "check --repo owner/name, and that the token is a repository admin's",
}


def require_branch(ref: str, branch: str) -> None:
    """Production deploys only from `branch`; any other ref is an error, not a silent skip."""
    if ref != f"refs/heads/{branch}":
        raise PipelineError(
            f"deploy.yml ran on {ref or 'no ref (GITHUB_REF is empty)'}, but production deploys only from "
            f"{branch}: nothing was deployed",
            f"run the workflow from {branch} (Actions > deploy > Run workflow > Use workflow from: {branch}), "
            "or merge the branch first",
        )


def run_freshness(args: argparse.Namespace) -> int:
    ref = args.ref if args.ref is not None else os.environ.get("GITHUB_REF", "")
    if args.ref_only:
        require_branch(ref, args.branch)
        print(f"{ref}: runs from {args.branch} may deploy")
        return 0
    repository = repository_of(args.repo)
    sha = args.sha if args.sha is not None else os.environ.get("GITHUB_SHA", "")
    require_branch(ref, args.branch)  # before asking for a token: the wrong branch needs no API call
    api = GitHubApi.from_env(purpose="to read the branch's tip")
    if not SHA.match(sha):
        raise PipelineError(f"commit {sha!r} is not a 40-hex SHA", "pass --sha (on a runner GITHUB_SHA is set)")
    branch = args.branch
    found, _ = api.request("GET", f"{repo_path(repository)}/git/ref/heads/{quote(branch)}", fixes=_READ_FIXES)
    head = (found or {}).get("object", {}).get("sha") if isinstance(found, dict) else None
    if not isinstance(head, str) or not SHA.match(head):
        raise PipelineError(
            f"GitHub answered no commit for refs/heads/{branch} of {repository}",
            f"check that {branch} exists in {repository}",
        )
    if sha == head:
        write_summary_text(f"### Deploying {sha[:7]}: it is the tip of {branch}\n")
        print(f"{sha} is the tip of {branch}: deploying it")
    else:
        why = (
            f"{branch} is at {head[:7]} now. Deploying {sha[:7]} would replace a newer commit in "
            f"production; the run for {head[:7]} (queued behind this one) deploys it.\n"
        )
        write_summary_text(f"### Deploy skipped: {sha[:7]} is no longer the tip of {branch}\n\n{why}")
        print(Annotation("notice", why.strip(), f"Deploy skipped: a newer commit is on {branch}").render())
    append_outputs({"fresh": "true" if sha == head else "false", "head": head})
    return 0


def run_account(_args: argparse.Namespace) -> int:
    """The account allowed-account-ids pins; refuses an unset value or a role in another account."""
    account_id, role_arn = os.environ.get("AWS_ACCOUNT_ID", ""), os.environ.get("AWS_DEPLOY_ROLE_ARN", "")
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
    append_outputs({"account-id": account_id})
    print(f"deploy role is in account {account_id}; the AWS sign-in accepts only that account", file=sys.stderr)
    return 0


def expected_subject(repository: str, environment: str = DEFAULT_ENVIRONMENT, branch: str = DEFAULT_BRANCH) -> str:
    """The `sub` a deploy job on `branch` in `environment` presents once the customisation is set."""
    return f"repo:{repository}:environment:{environment}:ref:refs/heads/{branch}"


def is_customised(setting: object) -> bool:
    return (
        isinstance(setting, dict)
        and setting.get("use_default") is False
        and setting.get("include_claim_keys") == CLAIM_KEYS
    )


def run_oidc_subject(args: argparse.Namespace) -> int:
    """Without --apply, a repository still on another template is an error; an admin applies it once."""
    repository = repository_of(args.repo)
    api = GitHubApi.from_env(purpose="of a repository admin to read the OIDC subject template")
    path = f"{repo_path(repository)}/actions/oidc/customization/sub"
    current, _ = api.request("GET", path, fixes=_ADMIN_FIXES)
    state = "already set"
    if not is_customised(current):
        if not args.apply:
            raise PipelineError(
                f"the OIDC subject of {repository} is {current!r}, not use_default=false with include_claim_keys "
                f"{CLAIM_KEYS}: its deploy job cannot assume the deploy role",
                f"run `python -m ci.github oidc-subject --repo {repository} --apply` with a repository admin's token",
            )
        api.request("PUT", path, {"use_default": False, "include_claim_keys": CLAIM_KEYS}, fixes=_ADMIN_FIXES)
        after, _ = api.request("GET", path, fixes=_ADMIN_FIXES)
        if not is_customised(after):
            raise PipelineError(
                f"GitHub accepted the OIDC subject template of {repository} but now answers {after!r}",
                "check the repository's (and organisation's) OIDC settings by hand, then rerun",
            )
        state = "applied"
    print(f"OIDC subject template of {repository}: {state} (include_claim_keys {CLAIM_KEYS})")
    print(f"deploy jobs present: {expected_subject(repository, args.environment, args.branch)}")
    return 0
