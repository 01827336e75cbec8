"""`python -m ci reset-local`: forget everything deployed to the local AWS emulator (build/local-aws/)."""

import argparse
import logging

from ci import logs
from ci.config import Config
from ci.paths import BuildPaths

logger = logging.getLogger(__name__)
HELP = "Forget everything deployed to the local AWS emulator (its state in build/local-aws/)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options


def run(_args: argparse.Namespace, _config: Config, paths: BuildPaths) -> int:
    from ci.deploy.target import LOCAL_STATE, reset_local

    state = paths.build / LOCAL_STATE
    removed = f"local AWS emulator reset: {state} removed; the next `python -m ci deploy` starts at version 1"
    logs.result(logger, removed if reset_local(state) else f"nothing to reset: {state} does not exist")
    return 0
