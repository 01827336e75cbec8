"""The baseline everyone starts from: `pip install --platform ... --only-binary=:all: --no-compile
--target` of the same lock, with no pruning and no bytecode — what SAM, Chalice, pip and uv produce."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ci.config import Config
from ci.errors import PipelineError
from ci.lock.tags import target_platforms


@dataclass(frozen=True)
class NaiveBuild:
    tree: Path  # holds python/
    seconds: float


def build_naive(config: Config, out: Path, pip_cache: Path) -> NaiveBuild:
    """Install the layer lock exactly as a naive packager would, timed (pip's cache makes it warm)."""
    if out.exists():
        shutil.rmtree(out)
    target = out / "python"
    lock = config.lock.layer_lock
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--isolated",
        "--index-url",
        config.lock.index_url,
        "--cache-dir",
        str(pip_cache),
        *[arg for tag in target_platforms(config.target) for arg in ("--platform", tag)],
        "--implementation",
        "cp",
        "--python-version",
        config.target.runtime.python,
        "--abi",
        config.target.runtime.python_tag,
        "--only-binary=:all:",
        "--no-compile",
        "--no-deps",
        "--require-hashes",
        "--target",
        str(target),
        "-r",
        str(lock),
    ]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise PipelineError(
            f"the naive baseline install failed (pip exit {result.returncode}):\n{result.stderr[-2000:]}",
            "check network access to the index and that requirements-layer.txt passes `python -m ci lock --check`",
        )
    return NaiveBuild(tree=out, seconds=seconds)
