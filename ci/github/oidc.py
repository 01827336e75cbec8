"""The repository's OIDC subject, customised so the deploy role can trust environment AND branch.

GitHub's default subject with an environment names no branch, so any pushed branch could match it; an admin
sets the [repo, context, ref] template once (`python -m ci.github oidc-subject --apply`).
"""

from __future__ import annotations

import argparse
import os
from urllib.parse import quote

from ci.errors import PipelineError
from ci.github.api import GitHubApi

# The order is the order of the parts of the subject.
CLAIM_KEYS = ["repo", "context", "ref"]
DEFAULT_ENVIRONMENT = "production"  # infra/template.yaml DeployEnvironment, deploy.yml's environment
DEFAULT_BRANCH = "main"  # infra/template.yaml DeployBranch, deploy.yml's push branch
_ADMIN_FIXES = {
    401: "export GITHUB_TOKEN: a token of a repository admin (a workflow's own GITHUB_TOKEN cannot do this)",
    403: "use a token of a repository admin: classic with the `repo` scope, or fine-grained with "
    "Actions: read and write on this repository",
    404: "check --repo owner/name, and that the token is a repository admin's",
}


def expected_subject(repository: str, environment: str = DEFAULT_ENVIRONMENT, branch: str = DEFAULT_BRANCH) -> str:
    """The `sub` a deploy job on `branch` in `environment` presents once the customisation is set."""
    return f"repo:{repository}:environment:{environment}:ref:refs/heads/{branch}"


def _path(repository: str) -> str:
    owner_repo = "/".join(quote(part, safe="") for part in repository.split("/", 1))
    return f"/repos/{owner_repo}/actions/oidc/customization/sub"


def is_customised(setting: object) -> bool:
    return (
        isinstance(setting, dict)
        and setting.get("use_default") is False
        and setting.get("include_claim_keys") == CLAIM_KEYS
    )


def ensure_subject(api: GitHubApi, repository: str, apply: bool) -> str:
    """'already set' or 'applied'; without `apply`, a repository still on another template is an error."""
    current, _ = api.request("GET", _path(repository), fixes=_ADMIN_FIXES)
    if is_customised(current):
        return "already set"
    if not apply:
        raise PipelineError(
            f"the OIDC subject of {repository} is {current!r}, not use_default=false with include_claim_keys "
            f"{CLAIM_KEYS}: its deploy job cannot assume the deploy role",
            f"run `python -m ci.github oidc-subject --repo {repository} --apply` with a repository admin's token",
        )
    api.request("PUT", _path(repository), {"use_default": False, "include_claim_keys": CLAIM_KEYS}, fixes=_ADMIN_FIXES)
    after, _ = api.request("GET", _path(repository), fixes=_ADMIN_FIXES)
    if not is_customised(after):
        raise PipelineError(
            f"GitHub accepted the OIDC subject template of {repository} but now answers {after!r}",
            "check the repository's (and organisation's) OIDC settings by hand, then rerun",
        )
    return "applied"


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    oidc = sub.add_parser(
        "oidc-subject", help="check (or --apply) the OIDC subject template the deploy role's trust needs"
    )
    oidc.add_argument("--repo", default=None, help="owner/name (default: GITHUB_REPOSITORY)")
    oidc.add_argument("--apply", action="store_true", help="set the template when it differs (repository admin)")
    oidc.add_argument("--environment", default=DEFAULT_ENVIRONMENT, help="for the subject printed at the end")
    oidc.add_argument("--branch", default=DEFAULT_BRANCH, help="for the subject printed at the end")


def run_oidc_subject(args: argparse.Namespace) -> int:
    repository = args.repo or os.environ.get("GITHUB_REPOSITORY", "")
    if repository.count("/") != 1:
        raise PipelineError(f"repository {repository!r} is not owner/name", "pass --repo owner/name")
    api = GitHubApi.from_env(purpose="of a repository admin to read the OIDC subject template")
    state = ensure_subject(api, repository, args.apply)
    print(f"OIDC subject template of {repository}: {state} (include_claim_keys {CLAIM_KEYS})")
    print(f"deploy jobs present: {expected_subject(repository, args.environment, args.branch)}")
    return 0


HANDLERS = {"oidc-subject": run_oidc_subject}
