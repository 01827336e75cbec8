"""python -m ci bootstrap: create or update infra/template.yaml's stack on the configured endpoint."""

import argparse
import logging

from ci import logs
from ci.config import Config
from ci.paths import BuildPaths

logger = logging.getLogger(__name__)
HELP = "Create the CloudFormation stack (bucket, roles) on the configured AWS endpoint (or the local emulator)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--github-repository", metavar="OWNER/NAME", help="the repository allowed to deploy")
    parser.add_argument(
        "--oidc-provider-arn",
        metavar="ARN",
        help="an existing token.actions.githubusercontent.com provider (an account has at most one); "
        "omitted: the stack creates it",
    )


def run(args: argparse.Namespace, config: Config, paths: BuildPaths) -> int:
    from ci.deploy.aws import readable_aws_errors
    from ci.deploy.target import EMBEDDED_REPOSITORY, bootstrap, deployment_target, stack_parameters, wants_embedded

    local = wants_embedded("auto")
    with readable_aws_errors("bootstrap"), deployment_target(config, paths, bootstrapped=False) as aws:
        # An emulator has no GitHub: its deploy role trusts a placeholder repository unless one is named.
        emulated = local or aws.emulated
        repository = args.github_repository or (EMBEDDED_REPOSITORY if emulated else None)
        outputs = bootstrap(aws, config, stack_parameters(config, repository, args.oidc_provider_arn))
    logs.result(logger, f"stack {config.deploy.stack_name} {outputs.status} on {aws.where}")
    logs.result(logger, f"  bucket          {outputs.bucket}")
    logs.result(logger, f"  execution role  {outputs.execution_role_arn}")
    logs.result(logger, f"  deploy role     {outputs.deploy_role_arn}  (the workflow's role-to-assume)")
    return 0
