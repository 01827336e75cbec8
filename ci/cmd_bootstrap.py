"""python -m ci bootstrap: create or update infra/template.yaml's stack on the configured endpoint."""

from __future__ import annotations

import argparse

from ci.config import Config
from ci.errors import PipelineError
from ci.paths import BuildPaths

HELP = "Create the CloudFormation stack (bucket, roles) on the configured AWS endpoint."


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
    from ci.deploy.stack import bootstrap, stack_parameters
    from ci.deploy.target import deployment_target, wants_embedded

    if wants_embedded("auto"):
        raise PipelineError(
            "no AWS endpoint or credentials configured: bootstrap creates the stack on the account (or emulator) "
            "that boto3 is configured for",
            "configure AWS credentials (or AWS_ENDPOINT_URL=http://127.0.0.1:PORT for a moto server); "
            "`python -m ci deploy` alone bootstraps its embedded moto by itself",
        )
    parameters = stack_parameters(config, args.github_repository, args.oidc_provider_arn)
    with readable_aws_errors("bootstrap"), deployment_target(config, "aws") as aws:
        outputs = bootstrap(aws, config, parameters)
    print(f"stack {config.deploy.stack_name} {outputs.status} on {aws.where}")
    print(f"  bucket          {outputs.bucket}")
    print(f"  execution role  {outputs.execution_role_arn}")
    print(f"  deploy role     {outputs.deploy_role_arn}  (the workflow's role-to-assume)")
    return 0
