"""The compact profile (sourceless + prune_unimported) of a what-if's projected layer, measured, not guessed.

The handler runs on every committed event in the projected layer and the build's compact step is applied,
so whether an added distribution is imported (pandas imports pyarrow when present) is seen, not assumed.
"""

from __future__ import annotations

import fnmatch
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ci.budget.what_if_project import LAYER_PREFIX, Projection
from ci.config import Config
from ci.errors import CheckFailedError
from ci.layer import bytecode, trace
from ci.layer.bytecode import LAMBDA_SITE, compile_files
from ci.paths import BuildPaths
from ci.site import rules
from ci.site.owners import BUILD_SITE
from ci.site.tree import link_or_copy, walk_files
from ci.zipsafe import open_zip


@dataclass(frozen=True)
class CompactLayer:
    """The projected layer with the compact profile: its bytes, or why it could not be measured."""

    layer_bytes: int | None
    files: int = 0
    traced_files: int = 0
    why_not: str = ""  # set when layer_bytes is None


def measure_compact(
    config: Config,
    paths: BuildPaths,
    projection: Projection,
    python: str,
    base_site: Path,
    new_site: Path | None,
    workdir: Path,
) -> CompactLayer:
    """Lay the projected layer out under `workdir`, trace the handler on it and apply the compact profile.

    `base_site`: the current layer.zip's python/, unpacked; `new_site`: the measured tree of every distribution
    not taken from layer.zip (None when there is none).
    """
    if not paths.model.is_file():
        return CompactLayer(None, why_not=f"no model at {paths.model} to trace the handler with (train first)")
    if workdir.exists():
        shutil.rmtree(workdir)
    site = workdir / BUILD_SITE
    for name, entries in projection.entries.items():
        source = new_site if name in projection.measured and new_site is not None else base_site
        for entry in entries:
            rel = entry.path.removeprefix(LAYER_PREFIX)
            if "__pycache__" in rel.split("/"):
                continue  # the build traces the tree before it compiles anything
            target = site / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            link_or_copy(source / rel, target)
    function = workdir / "function"
    with open_zip(paths.function_zip, "run `python -m ci build` first") as zipped:
        zipped.extract_all(function)
    version = config.target.runtime.python
    try:
        used = trace.trace_handler(
            python,
            site,
            function,
            config.function.handler,
            config.smoke.events,
            paths.model,
            pycache=bytecode.for_target(paths.cache, version),
            layer_lock=config.lock.layer_lock,
        )
    except CheckFailedError as exc:
        return CompactLayer(None, why_not=f"the handler did not run on the projected layer: {exc.problem[-300:]}")
    broken = used.broken_answers()
    if used.workload != "events" or broken:
        why = f"{len(broken)} event(s) answered with a server error" if broken else "no events were traced"
        return CompactLayer(None, why_not=f"the handler's trace on the projected layer is not usable: {why}")
    return CompactLayer(_compact_bytes(config, python, site, used, paths), len(used.modules), len(used.files))


def _compact_bytes(config: Config, python: str, site: Path, used: trace.ImportTrace, paths: BuildPaths) -> int:
    """What the build's compact step leaves of `site` (changed in place): the bytes of python/."""
    keep = set(used.files)
    for path in list(walk_files(site)):
        rel = path.relative_to(site).as_posix()
        pure = PurePosixPath(rel)
        if (
            rel in keep
            or rules.always_kept(pure)
            or any(part.endswith(".dist-info") for part in pure.parts)
            or any(fnmatch.fnmatchcase(rel, glob) for glob in config.build.keep)
        ):
            continue
        path.unlink()
    sourceless = sorted(rel for rel in used.modules if rel.endswith(".py") and (site / rel).is_file())
    version = config.target.runtime.python
    compile_files(python, version, site, sourceless, paths.cache / "bytecode", True, LAMBDA_SITE)
    for rel in sourceless:
        (site / rel).unlink()
    return sum(path.stat().st_size for path in walk_files(site))
