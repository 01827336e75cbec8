"""`make bench-ci` (`python -m ci bench --ci`): how long set-up, the pipeline, each check and the tests take,
in fresh clones of HEAD with warm download caches (docs/performance.md#ci-make-bench-ci)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ci.errors import PipelineError
from ci.tables import text_table

logger = logging.getLogger(__name__)

CHECKS = ("budget", "pins", "abi", "smoke")
ARTIFACTS = ("layer.zip", "function.zip", "model", "reports")  # what the build job uploads


@dataclass(frozen=True)
class Targets:
    """The issue's targets, on this machine with warm download caches."""

    venv_warm_s: float = 10.0
    pipeline_s: float = 75.0
    test_s: float = 150.0
    check_setup_s: float = 15.0


@dataclass
class Timed:
    seconds: float
    returncode: int
    steps: dict[str, float] = field(default_factory=dict)  # command -> its own seconds
    tail: str = ""  # the end of the output, for a failure


def run_timed(command: list[str], cwd: Path, env: dict[str, str], step_prefix: str = "") -> Timed:
    """Run `command`; with `step_prefix`, time each output line starting with it until the next one."""
    start = time.perf_counter()
    steps: dict[str, float] = {}
    current: tuple[str, float] | None = None
    lines: list[str] = []
    with subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if step_prefix and line.startswith(step_prefix):
                now = time.perf_counter()
                if current:
                    steps[current[0]] = now - current[1]
                current = (line.strip().removeprefix(step_prefix).strip(), now)
        returncode = process.wait()
    end = time.perf_counter()
    if current:
        steps[current[0]] = end - current[1]
    return Timed(end - start, returncode, steps, "".join(lines[-30:]))


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without the bench's own venv and make's variables (a clone runs its own)."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if "/.venv/" not in p + "/")
    env.update(extra)
    return env


def fresh_clone(source: Path, where: Path, cache: Path | None) -> Path:
    """`git clone` of HEAD, with `cache` linked in as build/cache (warm downloads, as CI restores them)."""
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(source), str(where)], check=True)
    if cache is not None and cache.is_dir():
        (where / "build").mkdir(exist_ok=True)
        subprocess.run(["cp", "-al", str(cache), str(where / "build" / "cache")], check=True)
    return where


def must(timed: Timed, what: str) -> Timed:
    if timed.returncode != 0:
        raise PipelineError(f"{what} failed (exit {timed.returncode}):\n{timed.tail}", "fix it, then measure again")
    return timed


def run_bench_ci(source: Path, cache: Path, with_test: bool = True) -> dict[str, Any]:
    """Every measurement, in one run; returns the report's details (rows with targets, load, commit)."""
    targets = Targets()
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, check=False
    ).stdout.strip()
    load_start = os.getloadavg()
    rows: list[dict[str, Any]] = []

    def row(name: str, seconds: float, target: float | None = None, note: str = "") -> None:
        met = None if target is None else seconds <= target
        rows.append({"measurement": name, "seconds": round(seconds, 1), "target_s": target, "met": met, "note": note})
        logger.info(f"  {name}: {seconds:.1f} s" + (f" (target <= {target:g} s)" if target is not None else ""))

    with tempfile.TemporaryDirectory(prefix="bench-ci-") as tmp:
        work = Path(tmp)
        env = clean_env()

        logger.info("make venv, cold: an empty uv cache, uv not yet bootstrapped (every wheel downloaded)")
        cold = fresh_clone(source, work / "cold", None)
        cold_env = clean_env(UV_CACHE_DIR=str(work / "uv-cold"))
        row("make venv, cold (empty uv cache)", must(run_timed(["make", "venv"], cold, cold_env), "make venv").seconds)
        shutil.rmtree(work / "uv-cold", ignore_errors=True)

        logger.info("make venv, warm: uv's cache and the bootstrapped uv in place, no .venv yet")
        shutil.rmtree(cold / ".venv")
        warm = must(run_timed(["make", "venv"], cold, env), "make venv")
        row("make venv, warm", warm.seconds, targets.venv_warm_s)
        shutil.rmtree(cold, ignore_errors=True)

        logger.info("make pipeline in a fresh clone, warm download caches")
        clone = fresh_clone(source, work / "pipeline", cache)
        pipeline = must(run_timed(["make", "pipeline"], clone, env, step_prefix=".venv/bin/python -m"), "pipeline")
        row("make pipeline, fresh clone (venv included)", pipeline.seconds, targets.pipeline_s)
        for step, seconds in pipeline.steps.items():
            row(f"  {step}", seconds)

        for check in CHECKS:
            logger.info(f"verify job `{check}`: fresh checkout, make venv, the artifact, then the check")
            job = fresh_clone(source, work / f"job-{check}", cache)
            start = time.perf_counter()
            must(run_timed(["make", "venv"], job, env), "make venv")
            for name in ARTIFACTS:  # what actions/download-artifact does for a check job
                source, target = clone / "build" / name, job / "build" / name
                if source.is_dir():
                    shutil.copytree(source, target)
                else:
                    shutil.copyfile(source, target)
            row(f"{check} job: set-up (venv + artifact)", time.perf_counter() - start, targets.check_setup_s)
            row(f"{check} job: make {check}", must(run_timed(["make", check], job, env), f"make {check}").seconds)
            shutil.rmtree(job, ignore_errors=True)

        if with_test:
            logger.info("make test in the pipeline's clone (venv-dev, lint, the whole suite)")
            test = must(run_timed(["make", "test"], clone, env), "make test")
            row("make test (venv-dev, lint, pytest)", test.seconds, targets.test_s)
    return {
        "commit": commit,
        "load_average": {"start": [round(x, 2) for x in load_start], "end": [round(x, 2) for x in os.getloadavg()]},
        "cpus": os.cpu_count(),
        "targets": asdict(targets),
        "rows": rows,
    }


def render_ci_table(result: dict[str, Any]) -> str:
    rows = []
    for row in result["rows"]:
        target = f"<= {row['target_s']:g} s" if row["target_s"] is not None else ""
        met = {True: "met", False: "MISSED", None: ""}[row["met"]]
        rows.append([row["measurement"], f"{row['seconds']:.1f} s", target, met])
    load = result["load_average"]
    header = (
        f"bench-ci at {result['commit'][:12]}, {result['cpus']} CPUs; load average (1, 5, 15 min) "
        f"{load['start']} at the start, {load['end']} at the end"
    )
    return header + "\n\n" + text_table(["measurement", "time", "target", ""], rows, numeric_from=1)
