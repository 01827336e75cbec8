"""`make bench`: this build (default and compact profiles) against a naive `pip install --target` layer.

Every variant is measured the same way: cold-start init as the median of fresh isolated interpreters importing
the handler (model load included), warm latency, peak RSS and the import trace through the smoke harness."""

from __future__ import annotations

import logging
import os
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ci import logs
from ci.config import Config
from ci.errors import PipelineError
from ci.isolated import isolated_command, isolated_env, target_python
from ci.paths import BuildPaths
from ci.pins.check import require_safe_model
from ci.pip import run_pip
from ci.reports import sha256_file
from ci.tables import text_table
from ci.units import MB, as_mb
from ci.zipsafe import open_zip

logger = logging.getLogger(__name__)
ROWS: list[tuple[str, str, str]] = [  # (label, key, format) of the table
    ("unzipped (function + layer)", "unzipped_bytes", "mb"),
    ("zipped (function + layer)", "zipped_bytes", "mb"),
    ("build time, warm cache", "build_s", "s"),
    ("cold-start init, median", "cold_start_s.median", "s"),
    ("smoke init (awslambdaric)", "smoke_init_s", "s"),
    ("warm invocation p50", "warm_p50_ms", "ms"),
    ("warm invocation p95", "warm_p95_ms", "ms"),
    ("peak RSS", "peak_rss_mb", "mbr"),
    ("bytes imported or mapped", "imported_bytes", "mb"),
]


@dataclass(frozen=True)
class Targets:
    """The performance targets of the issue, checked on every run."""

    default_unzipped_bytes: int = 236 * MB
    compact_unzipped_bytes: int = 190 * MB
    cold_start_ratio: float = 0.35
    warm_p50_ms: float = 10.0
    warm_rebuild_s: float = 30.0


def measure_cold_start(
    python: str,
    function_dir: Path,
    layer_dir: Path,
    model: Path,
    model_sha256: str,
    handler: str,
    runs: int = 5,
    layer_lock: Path | None = None,
) -> tuple[list[float], float]:
    """Cold-start init as Lambda pays it: (wall seconds of each of `runs` fresh processes importing the handler
    module, model load included, with only the function and the layer on sys.path; peak RSS in MB)."""
    # Each run unpickles the model: refuse it as `ci pins` would, and load only the bytes scanned.
    scanned = require_safe_model(model, layer_lock)
    if scanned != model_sha256:
        raise PipelineError(
            f"{model} has sha256 {scanned}, not the {model_sha256} it is measured for: it changed meanwhile",
            "rerun the benchmark on a build nobody is rewriting",
        )
    module = handler.rsplit(".", 1)[0]
    settings = {"_HANDLER": handler, "LAMBDA_TASK_ROOT": str(function_dir), "MODEL_PATH": str(model)}
    env = isolated_env({**settings, "MODEL_SHA256": model_sha256, "TZ": ":UTC"})
    command = isolated_command(python, [function_dir, layer_dir / "python"], f"import {module}")
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
    return timings, peak_kb / 1000


def build_naive(config: Config, out: Path, pip_cache: Path) -> float:
    """The baseline everyone starts from, timed (pip's cache makes it warm): `pip install --platform ...
    --only-binary=:all: --no-compile --target out/python` of the same lock (ci.pip: the target's wheels from the
    configured index), with no pruning and no bytecode — what SAM, Chalice, pip and uv produce."""
    if out.exists():
        shutil.rmtree(out)
    started = time.perf_counter()
    result = run_pip(
        "install", config.target, config.lock.index_url, "--cache-dir", str(pip_cache),
        "--no-compile", "--no-deps", "--require-hashes", "--target", str(out / "python"),
        "-r", str(config.lock.layer_lock)
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise PipelineError(
            f"the naive baseline install failed (pip exit {result.returncode}):\n{result.stderr[-2000:]}",
            "check network access to the index and that requirements-layer.txt passes `python -m ci lock --check`",
        )
    return seconds


def render_table(result: dict[str, Any]) -> str:
    """The benchmark as a terminal table, with ratios against the naive baseline."""
    names = ["naive", "default", "compact"]
    rows = []
    for label, key, kind in ROWS:
        values: list[float | None] = []
        for name in names:
            value: Any = result["variants"][name]
            for part in key.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            values.append(None if value is None else float(value))
        ratios = [f"{value / values[0]:.2f}x" if value is not None and values[0] else "n/a" for value in values[1:]]
        rows.append([label, *(_format(v, kind) for v in values), *ratios])
    lines = text_table(["", *names, "default/naive", "compact/naive"], rows, numeric_from=1).splitlines()
    lines += ["", f"MB = 1,000,000 bytes. Cold start: median of {result['runs']} fresh isolated interpreters.", ""]
    lines += [
        f"{'PASS' if check['met'] else 'FAIL'}  {check['target']}: {check['value']}" for check in result["checks"]
    ]
    return "\n".join(lines)


def _format(value: float | None, kind: str) -> str:
    if value is None:
        return "n/a"
    return {"mb": as_mb(value), "s": f"{value:.2f} s", "ms": f"{value:.2f} ms", "mbr": f"{value:,.0f} MB"}[kind]


def _build_ours(config: Config, variant: BuildPaths, compact: bool) -> float:
    from ci.layer.build import build_layer

    build = config.build
    if compact:
        build = replace(build, sourceless=True, prune_unimported=True, bytecode="runtime")
    started = time.perf_counter()
    # Every proof made again: the figure is a warm rebuild *including* verification (the target says so).
    with logs.muted("ci.layer"):  # its step lines would bury the bench's own
        build_layer(replace(config, build=build), variant, reuse_proofs=False)
    return time.perf_counter() - started


def _build_naive(config: Config, variant: BuildPaths, function_zip: Path) -> float:
    from ci.zipsafe import tree_entries, write_zip

    seconds = build_naive(config, variant.layer_tree, variant.cache / "pip")
    started = time.perf_counter()
    write_zip(tree_entries(variant.layer_tree), variant.layer_zip, cache=variant.cache / "deflate")
    shutil.copyfile(function_zip, variant.function_zip)
    return seconds + (time.perf_counter() - started)


def _unpack(zip_path: Path, into: Path) -> Path:
    if into.exists():
        shutil.rmtree(into)
    with open_zip(zip_path, "rebuild it: `make bench`") as archive:
        archive.extract_all(into)
    return into


def _sizes(zip_path: Path) -> dict[str, int]:
    with open_zip(zip_path, "rebuild it: `make bench`") as archive:
        infos = archive.infos
    return {
        "unzipped_bytes": sum(info.file_size for info in infos),
        "zipped_bytes": zip_path.stat().st_size,
        "files": sum(not info.is_dir() for info in infos),
    }


def measure_variant(config: Config, variant: BuildPaths, build_s: float, runs: int) -> dict[str, Any]:
    from ci.smoke.harness import run_smoke

    smoke = run_smoke(variant.layer_zip, variant.function_zip, variant.model, config, variant)
    if not smoke.passed:
        raise PipelineError(
            f"the smoke invocation failed on {variant.layer_zip}: " + "; ".join(smoke.failures),
            "a benchmark only counts builds that work: fix the build, then rerun `make bench`",
        )
    unpacked = variant.build / "unpacked"
    runs_s, peak_rss_mb = measure_cold_start(
        target_python(config.target.runtime.python),
        _unpack(variant.function_zip, unpacked / "task"),
        _unpack(variant.layer_zip, unpacked / "opt"),
        variant.model,
        sha256_file(variant.model),
        config.function.handler,
        runs=runs,
        layer_lock=config.lock.layer_lock,
    )
    shutil.rmtree(unpacked)
    report = smoke.report
    warm = report.get("warm") or {}
    trace = report.get("import_trace") or {}
    sizes, function = _sizes(variant.layer_zip), _sizes(variant.function_zip)
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
        variant.model_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(paths.model, variant.model)
        if paths.model.with_name("model.json").is_file():
            shutil.copyfile(paths.model.with_name("model.json"), variant.model_manifest)
        if name == "naive":
            default_function = BuildPaths(build=paths.build / "bench" / "default", cache=paths.cache).function_zip
            _build_naive(config, variant, default_function)  # warms pip's cache
            logger.info("bench: building naive (pip install --target, warm cache)...")
            seconds = _build_naive(config, variant, default_function)
        else:
            _build_ours(config, variant, name == "compact")  # warms this variant's caches
            logger.info(f"bench: building {name} (warm cache)...")
            seconds = _build_ours(config, variant, name == "compact")
        logger.info(f"bench: measuring {name}...")
        results[name] = measure_variant(config, variant, seconds, runs)
    return {"variants": results, "checks": check_targets(results, Targets()), "runs": runs}


def check_targets(results: dict[str, dict[str, Any]], targets: Targets) -> list[dict[str, Any]]:
    naive_cold = results["naive"]["cold_start_s"]["median"]
    checks = []
    for name, limit in (("default", targets.default_unzipped_bytes), ("compact", targets.compact_unzipped_bytes)):
        variant = results[name]
        ratio = variant["cold_start_s"]["median"] / naive_cold
        size = variant["unzipped_bytes"]
        checks += [
            {"target": f"{name}: unzipped <= {as_mb(limit, digits=0)}", "value": as_mb(size), "met": size <= limit},
            {
                "target": f"{name}: cold start <= {targets.cold_start_ratio}x naive",
                "value": f"{ratio:.2f}x",
                "met": ratio <= targets.cold_start_ratio,
            },
        ]
    p50, build_s = results["default"]["warm_p50_ms"], results["default"]["build_s"]
    met = p50 is not None and p50 <= targets.warm_p50_ms
    checks.append({"target": f"default: warm p50 <= {targets.warm_p50_ms:g} ms", "value": f"{p50} ms", "met": met})
    checks.append(
        {
            "target": f"default: warm rebuild <= {targets.warm_rebuild_s:g} s",
            "value": f"{build_s:.1f} s",
            "met": build_s <= targets.warm_rebuild_s,
        }
    )
    return checks
