"""Where a command deploys: the caller's AWS (or emulator), or the local emulator by default.

With no endpoint and no credentials the local emulator is used; inside GitHub Actions it must be asked for
(--target embedded), so a failed OIDC login never hides behind a "successful" local deploy.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from ci.config import Config
from ci.deploy.aws import Aws, connect, credentials_configured, endpoint_configured
from ci.errors import PipelineError
from ci.paths import BuildPaths

logger = logging.getLogger(__name__)

MODES = ("auto", "embedded", "aws")


def add_target_argument(parser: argparse.ArgumentParser) -> None:
    """`--target` of every command that talks to AWS or the local emulator."""
    parser.add_argument(
        "--target",
        choices=MODES,
        default="auto",
        help="auto (default): boto3's configuration if any, else the local AWS emulator (state in "
        "build/local-aws/); embedded: always the local emulator; aws: always boto3's configuration",
    )


def wants_embedded(mode: str, environ: Mapping[str, str] = os.environ) -> bool:
    if mode != "auto":
        return mode == "embedded"
    if endpoint_configured(environ) or credentials_configured(environ):
        return False
    if environ.get("GITHUB_ACTIONS") == "true":
        raise PipelineError(
            "no AWS credentials in this GitHub Actions job: refusing to fall back to the embedded emulator, "
            "which would report a deploy that never reached AWS",
            "give the job `permissions: id-token: write` and an aws-actions/configure-aws-credentials step with the "
            "DeployRoleArn output of the bootstrap stack; `--target embedded` deploys to a throwaway moto on purpose",
        )
    return True


@contextmanager
def deployment_target(
    config: Config,
    paths: BuildPaths,
    mode: str = "auto",
    bootstrapped: bool = True,
) -> Iterator[Aws]:
    """Yield connected clients; for the embedded default, the local emulator (its stack bootstrapped if asked)."""
    if not wants_embedded(mode):
        yield connect(config)
        return
    from ci.deploy.embedded import LOCAL_STATE, local_aws
    from ci.deploy.stack import EMBEDDED_REPOSITORY, bootstrap, find_stack, stack_parameters

    state = paths.build / LOCAL_STATE
    with local_aws(state) as url:
        logger.info(
            f"no AWS endpoint or credentials configured: using the local AWS emulator at {url} (state: {state})"
        )
        aws = connect(config, endpoint_url=url, static_credentials=("embedded", "embedded"), embedded=True)
        if bootstrapped and find_stack(aws, config.deploy.stack_name) is None:
            bootstrap(aws, config, stack_parameters(config, EMBEDDED_REPOSITORY, None))
            logger.info(f"bootstrapped stack {config.deploy.stack_name} from infra/template.yaml on the local emulator")
        if bootstrapped:
            from ci.deploy.shift import calm_local_alarms

            calm_local_alarms(aws, config)
        yield aws
        logger.info(f"local AWS emulator stopped; its state stays in {state} (see `python -m ci status`)")
