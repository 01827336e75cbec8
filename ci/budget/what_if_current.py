"""The layer a what-if is asked against: the current lock, as build/layer.zip holds it, with the budget's figures.

Refused when layer.zip was not built from the current lock: a delta "against the current lock" must
be measured on that lock's layer, not on whatever was built last.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ci.budget.attribution import UNATTRIBUTED, Attributor
from ci.budget.compute import BudgetInputs, compute_budget
from ci.budget.inputs import BUILD_FIX, gather_inputs
from ci.budget.model import Budget
from ci.budget.zips import Entry
from ci.config import Config
from ci.errors import PipelineError
from ci.layer.wheels import read_layer_lock
from ci.lock.files import display_path
from ci.lock.lockfile import LockFile
from ci.paths import BuildPaths
from ci.reports import sha256_file
from ci.site.owners import canonical


@dataclass(frozen=True)
class Current:
    """The layer the question is asked against: the current lock, as build/layer.zip holds it."""

    lock: LockFile
    inputs: BudgetInputs
    budget: Budget
    layer_sha256: str
    entries: dict[str, list[Entry]]  # canonical distribution ("" for unattributed files) -> layer.zip entries


def current_state(config: Config, paths: BuildPaths, limit_bytes: int | None) -> Current:
    """The current lock, layer.zip and function.zip; refused unless the layer was built from this lock."""
    lock = read_layer_lock(config.lock.layer_lock)
    if not paths.layer_zip.is_file():
        raise no_layer(config, paths)
    inputs = gather_inputs(config, paths, limit_bytes)
    report = inputs.build_report
    if not report:
        raise PipelineError(
            f"{paths.report('build')} not found: the projection starts from the current build", BUILD_FIX
        )
    layer_sha = sha256_file(inputs.layer.path)
    built_from = (report.get("lock") or {}).get("sha256")
    built = (report.get("layer") or {}).get("sha256")
    if built_from != lock.digest or built != layer_sha:
        raise PipelineError(
            f"{display_path(paths.layer_zip, config.root)} was not built from the current "
            f"{config.relative(config.lock.layer_lock)}: the delta would be against another layer",
            "run `python -m ci build` first, then ask again",
        )
    attributor = Attributor(inputs.layer, top_level=report.get("top_level") or {}, names=list(report["distributions"]))
    entries: dict[str, list[Entry]] = {}
    for entry in inputs.layer.entries:
        owner = attributor.distribution(entry.path)
        entries.setdefault("" if owner == UNATTRIBUTED else canonical(owner), []).append(entry)
    return Current(lock, inputs, compute_budget(inputs), layer_sha, entries)


def no_layer(config: Config, paths: BuildPaths) -> PipelineError:
    """Why there is no layer to ask against, in one line, and the one thing to run (a failed build deletes its zips)."""
    shown = display_path(paths.layer_zip, config.root)
    try:
        last = json.loads(paths.report("build").read_text())
    except (OSError, ValueError):
        last = None
    if isinstance(last, dict) and last.get("passed") is False and last.get("error"):
        first = str(last["error"]).splitlines()[0]
        return PipelineError(
            f"{shown} is missing: the last `python -m ci build` failed ({first}), and the what-if measures "
            "against the current lock's layer",
            f"{last.get('fix') or 'fix the build'}; then `python -m ci build` and ask again",
        )
    if not paths.model.is_file():
        return PipelineError(
            f"{shown} is missing and there is no trained model ({display_path(paths.model, config.root)}): the "
            "what-if measures against the current lock's layer, which the build makes with the model",
            "run `make pipeline` once (or `python -m training`, then `python -m ci build`), then ask again",
        )
    return PipelineError(f"{shown} is missing: the what-if measures against the current lock's layer", BUILD_FIX)
