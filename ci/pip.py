"""The wheels the Lambda target accepts (manylinux up to its runtime's real glibc, then pure Python), and pip run
one way wherever they are fetched: no config file or PIP_* variable, only the configured index.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys

from packaging.tags import Tag, compatible_tags, cpython_tags

from ci.config import Target

logger = logging.getLogger(__name__)

LEGACY_ALIASES = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
OLDEST_MANYLINUX_MINOR = 5
LEGACY_ARCHES_2010 = {"x86_64", "i686"}  # manylinux1/2010 never existed for aarch64


def target_platforms(target: Target) -> list[str]:
    major, minor = target.glibc_tuple
    machine = target.machine
    platforms = []
    for glibc_minor in range(minor, OLDEST_MANYLINUX_MINOR - 1, -1):
        platforms.append(f"manylinux_{major}_{glibc_minor}_{machine}")
        alias = LEGACY_ALIASES.get(glibc_minor)
        if alias and (glibc_minor == 17 or machine in LEGACY_ARCHES_2010):
            platforms.append(f"{alias}_{machine}")
    return platforms


def target_tags(target: Target) -> set[Tag]:
    """Every tag a wheel may carry and still install and load on `target`."""
    version = tuple(int(part) for part in target.runtime.python.split("."))
    python_tag = target.runtime.python_tag
    platforms = target_platforms(target)
    tags = set(cpython_tags(python_version=version, abis=[python_tag, "abi3", "none"], platforms=platforms))
    tags |= set(compatible_tags(python_version=version, interpreter=python_tag, platforms=platforms))
    return tags


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
