"""pip, run one way wherever wheels for the Lambda target are fetched: no config file or PIP_* variable,
only the configured index and the binary wheels the target accepts.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys

from ci.config import Target
from ci.lock.tags import target_platforms

logger = logging.getLogger(__name__)


def target_options(target: Target) -> list[str]:
    """Binary wheels for `target`: every platform tag its glibc accepts, its Python version and ABI."""
    platforms = [arg for platform in target_platforms(target) for arg in ("--platform", platform)]
    return [
        "--only-binary=:all:", *platforms, "--implementation", "cp",
        "--python-version", target.runtime.python, "--abi", target.runtime.python_tag,
    ]  # fmt: skip


def run_pip(subcommand: str, target: Target, index_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`pip <subcommand>` for `target` from `index_url` alone, without PIP_* variables or a configuration file."""
    command = [
        sys.executable, "-m", "pip", subcommand, "--isolated", "--disable-pip-version-check", "--quiet",
        "--index-url", index_url, *target_options(target), *args,
    ]  # fmt: skip
    logger.debug(f"run: {shlex.join(command)}")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull  # no configuration file is read
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False)
