"""Everything the budget reads, gathered and validated in one place.

The import trace is smoke's when smoke ran on this layer, else the build's own: on pull requests the
budget runs beside the smoke job.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ci.budget.compute import BudgetInputs
from ci.budget.model import TRACE_BUILD, TRACE_SMOKE
from ci.budget.traced import ImportTrace
from ci.budget.zips import ZipContents, read_zip
from ci.config import Config
from ci.config_sections import LAMBDA_UNZIPPED_LIMIT
from ci.errors import ConfigError, PipelineError
from ci.lock.files import display_path
from ci.paths import REPO_ROOT, BuildPaths
from ci.reports import sha256_file

BUILD_FIX = "run `python -m ci build` first (it writes layer.zip, function.zip and reports/build.json)"


def gather_inputs(
    config: Config,
    paths: BuildPaths,
    limit_bytes: int | None = None,
    lock_file: Path | None = None,
    function_zip: Path | None = None,
    layer_zip: Path | None = None,
) -> BudgetInputs:
    """`layer_zip`/`function_zip`: the snapshots to read instead of the build tree's files."""
    layer = read_zip(layer_zip or paths.layer_zip, "layer.zip", "layer", BUILD_FIX, shown=paths.layer_zip)
    build_report = read_json(paths.report("build"), BUILD_FIX, required=False) or {}
    built_from = build_report.get("lock")
    if isinstance(built_from, dict) and isinstance(built_from.get("sha256"), str):
        lock = {"path": str(built_from.get("path", "")), "sha256": built_from["sha256"]}  # what the layer holds
    else:
        lock = lock_identity(lock_file or config.lock.layer_lock, config.root)
    return BudgetInputs(
        function=read_zip(
            function_zip or paths.function_zip, "function.zip", "function", BUILD_FIX, shown=paths.function_zip
        ),
        layer=layer,
        limit_bytes=config.budget.limit_bytes if limit_bytes is None else _limit_override(limit_bytes),
        warn_fraction=config.budget.warn_fraction,
        build_report=build_report,
        extra_zips=extra_layer_zips(config),
        extra_arns=config.budget.extra_layer_arns,  # their unzipped size is declared: not measurable here
        import_trace=import_trace(paths, layer, build_report),
        lock=lock,
        compact_profile=built_compact(build_report, config),
        configured_remove=config.build.remove,
        extra_zip_names=tuple(config.relative(path) for path in config.budget.extra_layer_zips),
    )


def built_compact(build_report: dict[str, Any], config: Config) -> bool:
    """Was this layer built with the compact profile? The build report knows (`build --compact`
    does not change pipeline.toml); without one, the configuration is the best guess."""
    if build_report:
        sourceless = bool((build_report.get("bytecode") or {}).get("sourceless"))
        return sourceless and "unimported" in (build_report.get("rules") or {})
    return config.build.sourceless and config.build.prune_unimported


def read_json(path: Path, fix: str, required: bool = True, what: str = "") -> dict[str, Any] | None:
    """A JSON object from `path`; `what` ("baseline ") says which file a message is about."""
    if not path.is_file():
        if required:
            raise PipelineError(f"{what}{path} not found", fix)
        return None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PipelineError(f"{what}{path} is not valid JSON ({exc})", fix) from exc
    if not isinstance(data, dict):
        raise PipelineError(f"{what}{path} does not hold a JSON object", fix)
    return data


def extra_layer_zips(config: Config) -> tuple[ZipContents, ...]:
    fix = f"fix the path in budget.extra_layer_zips of {config.file} (paths are relative to the repository)"
    return tuple(read_zip(path, path.name, "extra layer", fix) for path in config.budget.extra_layer_zips)


def import_trace(paths: BuildPaths, layer: ZipContents, build_report: Mapping[str, Any]) -> ImportTrace | None:
    """The smoke report's trace if taken on this layer.zip; else the build's, if it traced the handler
    answering the committed events and built exactly this layer.zip; else a stale smoke trace (flagged)."""
    layer_sha = sha256_file(layer.path)
    smoke = smoke_trace(paths, layer_sha)
    if smoke is not None and smoke.same_layer:
        return smoke
    return build_trace(paths, build_report, layer_sha) or smoke


def smoke_trace(paths: BuildPaths, layer_sha: str) -> ImportTrace | None:
    report_path = paths.report("smoke")
    report = read_json(report_path, "rerun `python -m ci smoke`", required=False)
    trace = (report or {}).get("import_trace")
    if not isinstance(trace, dict):
        return None
    recorded = (report or {}).get("artifacts", {}).get("layer.zip")
    return ImportTrace(
        report=display_path(report_path, REPO_ROOT),
        same_layer=recorded == layer_sha,
        files=[str(path) for path in trace.get("files") or []],
        distributions={str(k): dict(v) for k, v in (trace.get("distributions") or {}).items()},
        source=TRACE_SMOKE,
    )


def build_trace(paths: BuildPaths, build_report: Mapping[str, Any], layer_sha: str) -> ImportTrace | None:
    """build.json's "import_trace", only when it can stand for the smoke's: the handler answered the
    events with the model (not an import-only trace) and the report describes this layer.zip."""
    trace = build_report.get("import_trace")
    built = build_report.get("layer")
    if not isinstance(trace, dict) or not isinstance(built, dict):
        return None
    traced = trace.get("paths")
    if trace.get("workload") != "events" or not isinstance(traced, list) or built.get("sha256") != layer_sha:
        return None
    distributions = trace.get("distributions")
    return ImportTrace(
        report=display_path(paths.report("build"), REPO_ROOT),
        same_layer=True,
        files=[str(path) for path in traced],
        distributions={str(k): dict(v) for k, v in distributions.items()} if isinstance(distributions, dict) else {},
        source=TRACE_BUILD,
    )


def lock_identity(lock_file: Path, root: Path) -> dict[str, str]:
    if not lock_file.is_file():
        return {}
    shown = str(lock_file.relative_to(root)) if lock_file.is_relative_to(root) else str(lock_file)
    return {"path": shown, "sha256": sha256_file(lock_file)}


def _limit_override(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= LAMBDA_UNZIPPED_LIMIT:
        raise ConfigError(
            f"--limit-bytes {value!r} is not a positive integer up to Lambda's {LAMBDA_UNZIPPED_LIMIT:,}",
            "give the limit in bytes, e.g. --limit-bytes 262144000 (Lambda's unzipped limit)",
        )
    return value
