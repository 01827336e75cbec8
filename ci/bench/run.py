"""`make bench`: this build (default and compact profiles) against the naive baseline, in one run.

Every variant is measured the same way: its zip unpacked fresh, cold-start init as the median of
fresh isolated interpreters importing the handler (model load included), warm latency, peak RSS and
the import trace through the smoke harness, which also proves every event still passes.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ci import logs
from ci.bench.coldstart import measure_cold_start
from ci.bench.naive import build_naive
from ci.config import Config
from ci.errors import PipelineError
from ci.isolated import target_python
from ci.paths import BuildPaths
from ci.reports import sha256_file
from ci.units import MB, as_mb
from ci.zipsafe import open_zip

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Targets:
    """The performance targets of the issue, checked on every run."""

    default_unzipped_bytes: int = 236 * MB
    compact_unzipped_bytes: int = 190 * MB
    cold_start_ratio: float = 0.35
    warm_p50_ms: float = 10.0
    warm_rebuild_s: float = 30.0


def _variant_paths(paths: BuildPaths, name: str) -> BuildPaths:
    return BuildPaths(build=paths.build / "bench" / name, cache=paths.cache)


def _with_model(variant: BuildPaths, model: Path) -> None:
    """Each variant traces and smokes against the same trained model, and training's answers for it."""
    variant.model_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model, variant.model)
    if model.with_name("model.json").is_file():
        shutil.copyfile(model.with_name("model.json"), variant.model_manifest)


def _build_ours(config: Config, variant: BuildPaths, compact: bool) -> float:
    from ci.layer.build import build_layer

    build = (
        replace(config.build, sourceless=True, prune_unimported=True, bytecode="runtime") if compact else config.build
    )
    started = time.perf_counter()
    # Every proof made again: the figure is a warm rebuild *including* verification (the target says so).
    with logs.muted("ci.layer"):  # its step lines would bury the bench's own
        build_layer(replace(config, build=build), variant, reuse_proofs=False)
    return time.perf_counter() - started


def _build_naive(config: Config, variant: BuildPaths, function_zip: Path) -> float:
    from ci.zipsafe import tree_entries, write_zip

    naive = build_naive(config, variant.layer_tree, variant.cache / "pip")
    started = time.perf_counter()
    write_zip(tree_entries(naive.tree), variant.layer_zip, cache=variant.cache / "deflate")
    shutil.copyfile(function_zip, variant.function_zip)
    return naive.seconds + (time.perf_counter() - started)


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
    cold = measure_cold_start(
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
    imported = sum(d.get("imported_bytes", 0) for d in (trace.get("distributions") or {}).values())
    sizes = _sizes(variant.layer_zip)
    function = _sizes(variant.function_zip)
    return {
        "layer": {**sizes, "sha256": sha256_file(variant.layer_zip)},
        "unzipped_bytes": sizes["unzipped_bytes"] + function["unzipped_bytes"],
        "zipped_bytes": sizes["zipped_bytes"] + function["zipped_bytes"],
        "build_s": round(build_s, 2),
        "cold_start_s": {"median": round(cold.median_s, 3), "runs": [round(t, 3) for t in cold.runs_s]},
        "smoke_init_s": (report.get("init") or {}).get("duration_s"),
        "warm_p50_ms": warm.get("p50_ms"),
        "warm_p95_ms": warm.get("p95_ms"),
        "peak_rss_mb": round(max(cold.peak_rss_mb, (report.get("peak_rss_bytes") or 0) / MB), 1),
        "imported_bytes": imported,
        "events_passed": sum(1 for event in report.get("events", []) if event.get("passed")),
    }


def run_bench(config: Config, paths: BuildPaths, runs: int = 5) -> dict[str, Any]:
    if runs < 5:
        raise PipelineError(f"--runs {runs} is too few for a median", "use --runs 5 or more")
    if not paths.model.is_file():
        raise PipelineError(f"{paths.model} not found: the benchmark runs the real model", "run `make train` first")
    results: dict[str, dict[str, Any]] = {}
    default = _variant_paths(paths, "default")
    for name, compact in (("default", False), ("compact", True)):
        variant = _variant_paths(paths, name)
        _with_model(variant, paths.model)
        _build_ours(config, variant, compact)  # warms this variant's caches
        logger.info(f"bench: building {name} (warm cache)...")
        seconds = _build_ours(config, variant, compact)
        logger.info(f"bench: measuring {name}...")
        results[name] = measure_variant(config, variant, seconds, runs)
    naive = _variant_paths(paths, "naive")
    _with_model(naive, paths.model)
    _build_naive(config, naive, default.function_zip)  # warms pip's cache
    logger.info("bench: building naive (pip install --target, warm cache)...")
    seconds = _build_naive(config, naive, default.function_zip)
    logger.info("bench: measuring naive...")
    results["naive"] = measure_variant(config, naive, seconds, runs)
    return {"variants": results, "checks": check_targets(results, Targets()), "runs": runs}


def check_targets(results: dict[str, dict[str, Any]], targets: Targets) -> list[dict[str, Any]]:
    naive_cold = results["naive"]["cold_start_s"]["median"]
    checks = []
    for name, limit in (("default", targets.default_unzipped_bytes), ("compact", targets.compact_unzipped_bytes)):
        variant = results[name]
        ratio = variant["cold_start_s"]["median"] / naive_cold
        checks += [
            {
                "target": f"{name}: unzipped <= {as_mb(limit, digits=0)}",
                "value": as_mb(variant["unzipped_bytes"]),
                "met": variant["unzipped_bytes"] <= limit,
            },
            {
                "target": f"{name}: cold start <= {targets.cold_start_ratio}x naive",
                "value": f"{ratio:.2f}x",
                "met": ratio <= targets.cold_start_ratio,
            },
        ]
    p50 = results["default"]["warm_p50_ms"]
    checks.append(
        {
            "target": f"default: warm p50 <= {targets.warm_p50_ms:g} ms",
            "value": f"{p50} ms",
            "met": p50 is not None and p50 <= targets.warm_p50_ms,
        }
    )
    build_s = results["default"]["build_s"]
    checks.append(
        {
            "target": f"default: warm rebuild <= {targets.warm_rebuild_s:g} s",
            "value": f"{build_s:.1f} s",
            "met": build_s <= targets.warm_rebuild_s,
        }
    )
    return checks
