"""Cold-start init, measured as Lambda pays it: a fresh interpreter imports the handler, which
loads the model at import (init phase), with nothing but the function and the layer on sys.path."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ci.errors import PipelineError
from ci.isolated import isolated_command, isolated_env
from ci.pins.guard import require_safe_model


@dataclass(frozen=True)
class ColdStart:
    runs_s: list[float]
    peak_rss_mb: float

    @property
    def median_s(self) -> float:
        return statistics.median(self.runs_s)


def measure_cold_start(
    python: str,
    function_dir: Path,
    layer_dir: Path,
    model: Path,
    model_sha256: str,
    handler: str,
    runs: int = 5,
    layer_lock: Path | None = None,
) -> ColdStart:
    """Median wall time of `runs` fresh processes importing the handler module (model load included)."""
    # Each run unpickles the model: refuse it as `ci pins` would, and load only the bytes scanned.
    scanned = require_safe_model(model, layer_lock)
    if scanned != model_sha256:
        raise PipelineError(
            f"{model} has sha256 {scanned}, not the {model_sha256} it is measured for: it changed meanwhile",
            "rerun the benchmark on a build nobody is rewriting",
        )
    module = handler.rsplit(".", 1)[0]
    sys_path = [function_dir, layer_dir / "python"]
    env = isolated_env(
        {
            "_HANDLER": handler,
            "LAMBDA_TASK_ROOT": str(function_dir),
            "MODEL_PATH": str(model),
            "MODEL_SHA256": model_sha256,
            "TZ": ":UTC",
        }
    )
    command = isolated_command(python, sys_path, f"import {module}")
    timings: list[float] = []
    peak_kb = 0
    for _ in range(runs):
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
        if process.stderr:
            process.stderr.close()
        if os.waitstatus_to_exitcode(status) != 0:
            raise PipelineError(
                f"importing {module} from {layer_dir} failed:\n{stderr[-2000:]}",
                "run `python -m ci smoke` on this build to see the cause",
            )
        timings.append(elapsed)
        peak_kb = max(peak_kb, usage.ru_maxrss)
    return ColdStart(runs_s=timings, peak_rss_mb=peak_kb / 1000)
