"""The baseline everyone starts from: `pip install --platform ... --only-binary=:all: --no-compile
--target` of the same lock (ci.pip: the target's wheels from the configured index), with no pruning
and no bytecode — what SAM, Chalice, pip and uv produce."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ci.config import Config
from ci.errors import PipelineError
from ci.pip import run_pip


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
    started = time.perf_counter()
    result = run_pip(
        "install", config.target, config.lock.index_url, "--cache-dir", str(pip_cache),
        "--no-compile", "--no-deps", "--require-hashes", "--target", str(target), "-r", str(lock),
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise PipelineError(
            f"the naive baseline install failed (pip exit {result.returncode}):\n{result.stderr[-2000:]}",
            "check network access to the index and that requirements-layer.txt passes `python -m ci lock --check`",
        )
    return NaiveBuild(tree=out, seconds=seconds)
