"""`make bench`: this build (default and compact profiles) against a naive `pip install --target` layer, measured alike;
`make bench-ci` (`--ci`): set-up, pipeline, checks and tests timed in fresh clones of HEAD (docs/performance.md)."""

import logging
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ci import logs
from ci.arch.interpreter import isolated_command, isolated_env, target_python
from ci.config import Config
from ci.errors import PipelineError
from ci.paths import BuildPaths
from ci.pins.check import require_safe_model
from ci.pip import run_pip
from ci.reports import sha256_file
from ci.tables import text_table
from ci.units import MB, as_mb
from ci.zipsafe import open_zip

logger = logging.getLogger(__name__)
ROWS: list[tuple[str, str, Callable[[float], str]]] = [  # (label, key, how a value reads) of the table
    ("unzipped (function + layer)", "unzipped_bytes", as_mb),
    ("zipped (function + layer)", "zipped_bytes", as_mb),
    ("build time, warm cache", "build_s", "{:.2f} s".format),
    ("cold-start init, median", "cold_start_s.median", "{:.2f} s".format),
    ("smoke init (awslambdaric)", "smoke_init_s", "{:.2f} s".format),
    ("warm invocation p50", "warm_p50_ms", "{:.2f} ms".format),
    ("warm invocation p95", "warm_p95_ms", "{:.2f} ms".format),
    ("peak RSS", "peak_rss_mb", "{:,.0f} MB".format),
    ("bytes imported or mapped", "imported_bytes", as_mb),
]

# The performance targets, checked on every run.
UNZIPPED_LIMITS = {"default": 236 * MB, "compact": 190 * MB}
COLD_START_RATIO = 0.35
WARM_P50_MS = 10.0
WARM_REBUILD_S = 30.0


def measure_cold_start(
    python: str,
    function_dir: Path,
    layer_dir: Path,
    model: Path,
    handler: str,
    runs: int = 5,
    layer_lock: Path | None = None,
) -> tuple[list[float], float]:
    """Cold-start init as Lambda pays it (the handler module imported, model loaded): seconds per run, peak RSS MB."""
    # Each run unpickles the model: refuse it as `ci pins` would; MODEL_SHA256 makes the handler load only those bytes.
    model_sha256 = require_safe_model(model, layer_lock)
    module = handler.rsplit(".", 1)[0]
    settings = {"_HANDLER": handler, "LAMBDA_TASK_ROOT": str(function_dir), "MODEL_PATH": str(model)}
    env = isolated_env({**settings, "MODEL_SHA256": model_sha256, "TZ": ":UTC"})
    command = isolated_command(python, [function_dir, layer_dir / "python"], f"import {module}")
    timings: list[float] = []
    peak_kb = 0
    for _ in range(runs):
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own peak RSS, not every child's
        timings.append(time.perf_counter() - started)
        stderr = process.communicate()[1].decode(errors="replace")
        if os.waitstatus_to_exitcode(status) != 0:
            raise PipelineError(
                f"importing {module} from {layer_dir} failed:\n{stderr[-2000:]}",
                "run `python -m ci smoke` on this build to see the cause",
            )
        peak_kb = max(peak_kb, usage.ru_maxrss)
    return timings, peak_kb / 1000


def build_naive(config: Config, out: Path, pip_cache: Path) -> None:
    """The baseline SAM, Chalice, pip and uv produce: `pip install --no-compile --target` of the lock."""
    if out.exists():
        shutil.rmtree(out)
    result = run_pip(
        "install", config.target, config.lock.index_url, "--cache-dir", str(pip_cache),
        "--no-compile", "--no-deps", "--require-hashes", "--target", str(out / "python"),
        "-r", str(config.lock.layer_lock)
    )  # fmt: skip
    if result.returncode != 0:
        raise PipelineError(
            f"the naive baseline install failed (pip exit {result.returncode}):\n{result.stderr[-2000:]}",
            "check network access to the index and that requirements-layer.txt passes `python -m ci lock --check`",
        )


def render_table(result: dict[str, Any]) -> str:
    names = ["naive", "default", "compact"]
    rows = []
    for label, key, show in ROWS:
        values = [result["variants"][name] for name in names]
        for part in key.split("."):  # "cold_start_s.median": a value inside a value
            values = [value[part] for value in values]
        ratios = [f"{value / values[0]:.2f}x" if value is not None and values[0] else "n/a" for value in values[1:]]
        rows.append([label, *("n/a" if v is None else show(v) for v in values), *ratios])
    lines = text_table(["", *names, "default/naive", "compact/naive"], rows, numeric_from=1).splitlines()
    lines += ["", f"MB = 1,000,000 bytes. Cold start: median of {result['runs']} fresh isolated interpreters.", ""]
    lines += [
        f"{'PASS' if check['met'] else 'FAIL'}  {check['target']}: {check['value']}" for check in result["checks"]
    ]
    return "\n".join(lines)


def _build(config: Config, variant: BuildPaths, name: str) -> float:
    """Seconds to build variant `name`; naive's function.zip is the default variant's."""
    from ci.layer.build import build_layer
    from ci.zipsafe import tree_entries, write_zip

    started = time.perf_counter()
    if name == "naive":
        build_naive(config, variant.layer_tree, variant.cache / "pip")
        write_zip(tree_entries(variant.layer_tree), variant.layer_zip, cache=variant.cache / "deflate")
        shutil.copyfile(variant.build.parent / "default" / "function.zip", variant.function_zip)
    else:
        build = config.build
        if name == "compact":
            build = replace(build, sourceless=True, prune_unimported=True, bytecode="runtime")
        # Every proof made again: the figure is a warm rebuild *including* verification (the target says so).
        with logs.muted("ci.layer"):  # its step lines would bury the bench's own
            build_layer(replace(config, build=build), variant, reuse_proofs=False)
    return time.perf_counter() - started


def _unpack(zip_path: Path, into: Path) -> dict[str, int]:
    if into.exists():
        shutil.rmtree(into)
    with open_zip(zip_path, "rebuild it: `make bench`") as archive:
        archive.extract_all(into)
        return {
            "unzipped_bytes": sum(info.file_size for info in archive.infos),
            "zipped_bytes": zip_path.stat().st_size,
            "files": sum(not info.is_dir() for info in archive.infos),
        }


def measure_variant(config: Config, variant: BuildPaths, build_s: float, runs: int) -> dict[str, Any]:
    from ci.smoke.harness import run_smoke

    smoke = run_smoke(variant.layer_zip, variant.function_zip, variant.model, config, variant)
    if not smoke.passed:
        raise PipelineError(
            f"the smoke invocation failed on {variant.layer_zip}: " + "; ".join(smoke.failures),
            "a benchmark only counts builds that work: fix the build, then rerun `make bench`",
        )
    task, opt = variant.build / "unpacked" / "task", variant.build / "unpacked" / "opt"
    function, sizes = _unpack(variant.function_zip, task), _unpack(variant.layer_zip, opt)
    python = target_python(config.target.runtime.python)
    runs_s, peak_rss_mb = measure_cold_start(
        python, task, opt, variant.model, config.function.handler, runs, config.lock.layer_lock
    )
    shutil.rmtree(task.parent)
    report = smoke.report
    warm = report.get("warm") or {}
    trace = report.get("import_trace") or {}
    return {
        "layer": {**sizes, "sha256": sha256_file(variant.layer_zip)},
        "unzipped_bytes": sizes["unzipped_bytes"] + function["unzipped_bytes"],
        "zipped_bytes": sizes["zipped_bytes"] + function["zipped_bytes"],
        "build_s": round(build_s, 2),
        "cold_start_s": {"median": round(statistics.median(runs_s), 3), "runs": [round(t, 3) for t in runs_s]},
        "smoke_init_s": (report.get("init") or {}).get("duration_s"),
        "warm_p50_ms": warm.get("p50_ms"),
        "warm_p95_ms": warm.get("p95_ms"),
        "peak_rss_mb": round(max(peak_rss_mb, (report.get("peak_rss_bytes") or 0) / MB), 1),
        "imported_bytes": sum(d.get("imported_bytes", 0) for d in (trace.get("distributions") or {}).values()),
        "events_passed": sum(1 for event in report.get("events", []) if event.get("passed")),
    }


def run_bench(config: Config, paths: BuildPaths, runs: int = 5) -> dict[str, Any]:
    if runs < 5:
        raise PipelineError(f"--runs {runs} is too few for a median", "use --runs 5 or more")
    if not paths.model.is_file():
        raise PipelineError(f"{paths.model} not found: the benchmark runs the real model", "run `make train` first")
    results: dict[str, dict[str, Any]] = {}
    for name in ("default", "compact", "naive"):
        variant = BuildPaths(build=paths.build / "bench" / name, cache=paths.cache)
        # Each variant traces and smokes against the same trained model, and training's answers for it.
        shutil.copytree(paths.model_dir, variant.model_dir, dirs_exist_ok=True)
        _build(config, variant, name)  # warms pip's cache or this variant's own
        how = "pip install --target, warm cache" if name == "naive" else "warm cache"
        logger.info(f"bench: building {name} ({how})...")
        seconds = _build(config, variant, name)
        logger.info(f"bench: measuring {name}...")
        results[name] = measure_variant(config, variant, seconds, runs)
    return {"variants": results, "checks": check_targets(results), "runs": runs}


def check_targets(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    naive_cold = results["naive"]["cold_start_s"]["median"]
    checks: list[tuple[str, str, bool]] = []
    for name, limit in UNZIPPED_LIMITS.items():
        size, ratio = results[name]["unzipped_bytes"], results[name]["cold_start_s"]["median"] / naive_cold
        checks.append((f"{name}: unzipped <= {as_mb(limit, digits=0)}", as_mb(size), size <= limit))
        checks.append((f"{name}: cold start <= {COLD_START_RATIO}x naive", f"{ratio:.2f}x", ratio <= COLD_START_RATIO))
    p50, build_s = results["default"]["warm_p50_ms"], results["default"]["build_s"]
    checks.append((f"default: warm p50 <= {WARM_P50_MS:g} ms", f"{p50} ms", p50 is not None and p50 <= WARM_P50_MS))
    checks.append((f"default: warm rebuild <= {WARM_REBUILD_S:g} s", f"{build_s:.1f} s", build_s <= WARM_REBUILD_S))
    return [{"target": target, "value": value, "met": met} for target, value, met in checks]


# The targets for `make bench-ci`, on this machine with warm download caches.
CI_TARGETS = {"venv_warm_s": 10.0, "pipeline_s": 75.0, "test_s": 150.0, "check_setup_s": 15.0}


@dataclass
class Timed:
    seconds: float
    returncode: int
    steps: dict[str, float]  # command -> its own seconds
    tail: str  # the end of the output, for a failure


def run_timed(command: list[str], cwd: Path, env: dict[str, str], step_prefix: str = "") -> Timed:
    """Run `command`; with `step_prefix`, time each output line starting with it until the next one."""
    start = time.perf_counter()
    marks: list[tuple[str, float]] = []  # (step, when its line was read)
    lines: list[str] = []
    with subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if step_prefix and line.startswith(step_prefix):
                marks.append((line.strip().removeprefix(step_prefix).strip(), time.perf_counter()))
        returncode = process.wait()
    end = time.perf_counter()
    ends = [when for _, when in marks[1:]] + [end]
    steps = {step: stop - began for (step, began), stop in zip(marks, ends, strict=False)}
    return Timed(end - start, returncode, steps, "".join(lines[-30:]))


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without the bench's own venv and make's variables (a clone runs its own)."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if "/.venv/" not in p + "/")
    return {**env, **extra}


def fresh_clone(source: Path, where: Path, cache: Path | None) -> Path:
    """`git clone` of HEAD, with `cache` linked in as build/cache (warm downloads, as CI restores them)."""
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(source), str(where)], check=True)
    if cache is not None and cache.is_dir():
        (where / "build").mkdir(exist_ok=True)
        subprocess.run(["cp", "-al", str(cache), str(where / "build" / "cache")], check=True)
    return where


def make(target: str, clone: Path, env: dict[str, str], step_prefix: str = "") -> Timed:
    timed = run_timed(["make", target], clone, env, step_prefix)
    if timed.returncode != 0:
        raise PipelineError(
            f"make {target} failed (exit {timed.returncode}):\n{timed.tail}", "fix it, then measure again"
        )
    return timed


def run_bench_ci(source: Path, cache: Path, with_test: bool = True) -> dict[str, Any]:
    commit = subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=source, text=True).strip()
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
        row("make venv, cold (empty uv cache)", make("venv", cold, cold_env).seconds)
        shutil.rmtree(work / "uv-cold", ignore_errors=True)

        logger.info("make venv, warm: uv's cache and the bootstrapped uv in place, no .venv yet")
        shutil.rmtree(cold / ".venv")
        row("make venv, warm", make("venv", cold, env).seconds, CI_TARGETS["venv_warm_s"])
        shutil.rmtree(cold, ignore_errors=True)

        logger.info("make pipeline in a fresh clone, warm download caches")
        clone = fresh_clone(source, work / "pipeline", cache)
        pipeline = make("pipeline", clone, env, step_prefix=".venv/bin/python -m")
        row("make pipeline, fresh clone (venv included)", pipeline.seconds, CI_TARGETS["pipeline_s"])
        for step, seconds in pipeline.steps.items():
            row(f"  {step}", seconds)
        artifacts = [str(clone / "build" / name) for name in ("layer.zip", "function.zip", "model", "reports")]

        for check in ("budget", "pins", "abi", "smoke"):
            logger.info(f"verify job `{check}`: fresh checkout, make venv, the artifact, then the check")
            job = fresh_clone(source, work / f"job-{check}", cache)
            start = time.perf_counter()
            make("venv", job, env)
            subprocess.run(["cp", "-r", *artifacts, str(job / "build")], check=True)  # the build job's upload
            row(f"{check} job: set-up (venv + artifact)", time.perf_counter() - start, CI_TARGETS["check_setup_s"])
            row(f"{check} job: make {check}", make(check, job, env).seconds)
            shutil.rmtree(job, ignore_errors=True)

        if with_test:
            logger.info("make test in the pipeline's clone (venv-dev, lint, the whole suite)")
            row("make test (venv-dev, lint, pytest)", make("test", clone, env).seconds, CI_TARGETS["test_s"])
    return {
        "commit": commit,
        "load_average": {"start": [round(x, 2) for x in load_start], "end": [round(x, 2) for x in os.getloadavg()]},
        "cpus": os.cpu_count(),
        "targets": CI_TARGETS,
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
