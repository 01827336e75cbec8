"""The budget check from start to end: gather, compute, compare with a baseline."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

from ci.budget.baseline import build_layer_at, compare, load_baseline, lock_at_ref, lock_digest
from ci.budget.compute import compute_budget
from ci.budget.inputs import gather_inputs
from ci.budget.model import Budget
from ci.budget.render_json import budget_to_dict
from ci.cache_seal import sources_digest
from ci.config import Config
from ci.lock.files import display_path
from ci.paths import BuildPaths

BASELINE_KEY = "baseline.key"
CI_PACKAGE = Path(__file__).resolve().parents[1]  # the code that builds the baseline layer


def check_budget(
    config: Config,
    paths: BuildPaths,
    *,
    limit_bytes: int | None = None,
    baseline: Path | None = None,
    baseline_ref: str | None = None,
    baseline_label: str | None = None,
    config_file: Path | None = None,
    rebuild_baseline: bool = False,
    layer_zip: Path | None = None,
    function_zip: Path | None = None,
) -> Budget:
    """`layer_zip`/`function_zip`: the snapshots to judge (default: the build tree's files)."""
    budget = compute_budget(gather_inputs(config, paths, limit_bytes, function_zip=function_zip, layer_zip=layer_zip))
    if baseline is not None:
        figures = load_baseline(baseline)
        comparison = compare(budget, figures, baseline_label or "baseline", str(baseline))
        budget = dataclasses.replace(budget, comparison=comparison)
    elif baseline_ref is not None:
        figures, source = baseline_from_ref(
            config,
            paths,
            baseline_ref,
            budget,
            limit_bytes,
            config_file,
            rebuild=rebuild_baseline,
            function_zip=function_zip,
        )
        label = baseline_label or baseline_ref.removeprefix("origin/")
        budget = dataclasses.replace(budget, comparison=compare(budget, figures, label, source))
    return budget


def baseline_from_ref(
    config: Config,
    paths: BuildPaths,
    ref: str,
    current: Budget,
    limit_bytes: int | None,
    config_file: Path | None,
    rebuild: bool = False,
    function_zip: Path | None = None,
) -> tuple[dict[str, Any], str]:
    """The budget of the layer built from the lock at `ref`, with this checkout's rules, model and function.

    The build is deterministic, so an identical lock gives identical bytes: then this build's
    figures are the baseline's and the delta is exactly zero without building twice.
    """
    lock_path = config.relative(config.lock.layer_lock)
    sha, lock = lock_at_ref(config.root, ref, lock_path)
    source = f"{lock_path} at {ref} ({sha[:12]})"
    if not rebuild and current.lock.get("sha256") == lock_digest(lock):
        return budget_to_dict(current), source + ", identical to this build's lock"

    base = BuildPaths(build=paths.build / f"baseline-{sha[:12]}", cache=paths.cache)
    config_file = config_file or config.file
    model = paths.model.read_bytes() if paths.model.is_file() else b""
    # The build also runs this checkout's code: its rules, and the handler traced on the events.
    handler = config.root / config.function.handler.split(".", 1)[0]
    code = sources_digest(CI_PACKAGE, handler, config.smoke.events).encode()
    key = hashlib.sha256(b"\0".join([lock, config_file.read_bytes(), model, code])).hexdigest()
    key_file = base.build / BASELINE_KEY
    cached = key_file.is_file() and key_file.read_text() == key and base.layer_zip.is_file()
    if rebuild or not cached:
        key_file.unlink(missing_ok=True)
        build_layer_at(lock, base.build, paths.cache, config_file, paths.model_dir)
        key_file.write_text(key)
    # Only the layer comes from the ref: the function code is this checkout's on both sides.
    inputs = gather_inputs(
        config, base, limit_bytes, base.build / "requirements-layer.txt", function_zip or paths.function_zip
    )
    return budget_to_dict(compute_budget(inputs)), source + f", built in {display_path(base.build, config.root)}"
