"""`python -m ci budget --what-if SPEC ...`: would the layer still fit with these packages, and if not, what would?

resolve -> fetch -> measure what is new -> project -> judge -> options, touching none of the build's outputs
or the locks; answers are cached under build/what-if/answers/ by everything that decides them."""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import functools
import hashlib
import json
import logging
import os
import platform
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ci import logs, unpacked_layers
from ci.budget.compute import BUILD_FIX, BudgetInputs, compute_budget, gather_inputs
from ci.budget.contents import LAYER_PREFIX, UNATTRIBUTED, Entry, attribute, module_key
from ci.budget.model import FAIL, WARN, Budget, Comparison, Component, Group, Suggestion, delta_rows
from ci.budget.options import describe, outcome, paste_text, removal_options
from ci.budget.render import headline, table, verdict_message
from ci.budget.what_if_request import (
    Move,
    UnresolvableError,
    WhatIfRequest,
    held_back,
    moved_pins,
    parse_request,
    resolve,
    target_name,
)
from ci.cache_seal import sources_digest
from ci.config import Config, Target
from ci.config_sections import BuildConfig
from ci.errors import CheckFailedError, PipelineError
from ci.isolated import target_python
from ci.layer import bytecode, strip, trace, verify
from ci.layer.bytecode import LAMBDA_SITE, compile_files, pyc_path
from ci.layer.wheels import CachedWheel, InstalledDistribution, fetch, find_cached, install_wheels, read_layer_lock
from ci.lock.files import display_path, read_in
from ci.lock.lockfile import LockFile, read_lock
from ci.paths import BuildPaths
from ci.pins.check import PACKAGES
from ci.reports import Finding, sha256_file, write_report
from ci.site import rules
from ci.site.owners import BUILD_SITE, Owners, canonical
from ci.site.tree import globbed, link_or_copy, walk_files
from ci.tables import text_table
from ci.units import UNITS_NOTE, as_bytes, as_mb, mb_cell, signed_mb
from ci.zipsafe import open_zip

logger = logging.getLogger(__name__)

CI_PACKAGE = Path(__file__).resolve().parents[1]
MEASURE_FORMAT = 1
LAYER_STEPS = ("strip", "verify", "install", "bytecode")  # the build's own code that measuring runs
# A shared library named like a module (pyarrow's libarrow_python.so): loaded by other modules, not imported.
NOT_A_MODULE = "does not define module export function"
MEASURING_CODE = [Path(__file__), *(CI_PACKAGE / "layer" / f"{step}.py" for step in LAYER_STEPS)]
CHECK = "budget-what-if"
CURRENT = "the current lock"
HOW = {
    "layer.zip": "as build/layer.zip ships it",
    "measured": "installed and pruned by the build's rules now",
    "cached": "installed and pruned by the build's rules (cached)",
}
MODEL_PACKAGES = frozenset(PACKAGES.values())
COMPACT_MEASURED = (
    "every file the handler never used on the committed events in the projected layer (measured: the "
    "build's trace run on it, added distributions included) and the .py of every module it imported, "
    "which ships as its .pyc"
)


@dataclass(frozen=True)
class Current:
    """The layer the question is asked against: the current lock, as build/layer.zip holds it."""

    lock: LockFile
    inputs: BudgetInputs
    budget: Budget
    layer_sha256: str
    entries: dict[str, list[Entry]]  # canonical distribution ("" for unattributed files) -> layer.zip entries


def current_state(config: Config, paths: BuildPaths, limit_bytes: int | None) -> Current:
    """Refused unless layer.zip was built from the current lock: a delta "against the current lock" must be
    measured on that lock's layer, not on whatever was built last."""
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
    if (report.get("lock") or {}).get("sha256") != lock.digest or (report.get("layer") or {}).get(
        "sha256"
    ) != layer_sha:
        raise PipelineError(
            f"{display_path(paths.layer_zip, config.root)} was not built from the current "
            f"{config.relative(config.lock.layer_lock)}: the delta would be against another layer",
            "run `python -m ci build` first, then ask again",
        )
    owner, _ = attribute(inputs.layer, report.get("top_level") or {}, list(report["distributions"]))
    entries: dict[str, list[Entry]] = {}
    for entry in inputs.layer.entries:
        name = owner[entry.path]
        entries.setdefault("" if name == UNATTRIBUTED else canonical(name), []).append(entry)
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


@dataclass(frozen=True)
class Projection:
    """The projected layer: layer.zip's own entries for unchanged distributions, measured files for the others."""

    request: WhatIfRequest
    target: Target
    budget: Budget  # the projected function + layers, compared with the current lock's
    lock_shown: str  # the what-if lock, as a path to read
    entries: dict[str, list[Entry]]  # canonical distribution ("" for unattributed) -> projected layer entries
    how: dict[str, str]  # canonical distribution -> "layer.zip" | "measured" | "cached"
    measured: dict[str, Measured]
    added: list[str]
    moves: list[Move]
    held_back: list[str]
    needed_by_added: set[str]  # distributions an added one requires (never "never imported" from now on)
    bytecode_if_imported: dict[str, int]  # added distribution -> .pyc bytes if the handler imports all of it
    options: list[Suggestion] = field(default_factory=list)

    @property
    def judged(self) -> set[str]:
        """Distributions the current import trace can speak for: all but the added ones."""
        return set(self.entries) - set(self.added)


def project(
    config: Config,
    current: Current,
    request: WhatIfRequest,
    lock: LockFile,
    measured: dict[str, Measured],
    moves: list[Move],
    held_back: list[str],
    lock_shown: str,
) -> Projection:
    """Bytecode follows the build's mode; an added distribution gets none in `runtime` mode (the handler does
    not import it yet), and what it would add is reported beside it."""
    mode = current.budget.bytecode.mode
    version = config.target.runtime.python
    entries: dict[str, list[Entry]] = {"": list(current.entries.get("", []))}
    how: dict[str, str] = {}
    added = sorted(name for name in lock.pins if name not in current.lock.pins)
    for name in lock.pins:
        old = current.entries.get(name, [])
        if name not in measured:
            entries[name], how[name] = list(old), "layer.zip"
            continue
        # runtime (or unknown) mode: the .py whose .pyc the current layer ships, the modules the build compiled
        compiled = {module_key(e.path) for e in old if e.path.endswith(".pyc")} - {None}
        modules = {str(key).removeprefix(LAYER_PREFIX) + ".py" for key in compiled}
        if mode == "none" or name in added:
            modules = set()
        files = [Entry(LAYER_PREFIX + rel, size, 0) for rel, size in measured[name].files.items()]
        files += [
            Entry(LAYER_PREFIX + pyc_path(rel, version, False), size, 0)
            for rel, size in measured[name].pyc.items()
            if mode == "all" or rel in modules
        ]
        entries[name], how[name] = files, "cached" if measured[name].from_cache else "measured"
    layer = [entry for group in entries.values() for entry in group]
    components = [
        *(c for c in current.budget.components if c.kind == "function"),
        Component("layer.zip (projected)", "layer", lock_shown, sum(e.unzipped_bytes for e in layer), None, len(layer)),
        *(c for c in current.budget.components if c.kind == "extra layer"),
    ]
    groups = [
        Group(name, sum(e.unzipped_bytes for e in group), 0, len(group), lock.pins[name].version)
        for name, group in entries.items()
        if name
    ]
    sides = []
    for name in sorted(set(current.lock.pins) | set(lock.pins)):
        before, after = current.lock.pins.get(name), lock.pins.get(name)
        sides.append(
            (
                name,
                (sum(e.unzipped_bytes for e in current.entries.get(name, [])), before.version) if before else None,
                (sum(e.unzipped_bytes for e in entries.get(name, [])), after.version) if after else None,
            )
        )
    used = sum(c.unzipped_bytes for c in components)
    source = f"{config.relative(current.lock.path)} ({current.lock.digest[:12]}) as build/layer.zip ships it"
    budget = dataclasses.replace(
        current.budget,
        components=components,
        distributions=sorted(groups, key=lambda g: (-g.unzipped_bytes, g.name)),
        categories=[],
        rules=[],
        largest_files=[],
        largest_directories=[],
        imports=None,
        lock={"path": lock_shown, "sha256": lock.digest},
        compact_saving_bytes=None,
        suggestions=[],
        comparison=Comparison(CURRENT, source, current.budget.used_bytes, used, delta_rows(sides)),
    )
    needed_by_added = {name for name, pin in lock.pins.items() if set(pin.via) & set(added)}
    bytecode = {name: sum(measured[name].pyc.values()) for name in added if name in measured}
    return Projection(
        request,
        config.target,
        budget,
        lock_shown,
        entries,
        how,
        measured,
        added,
        moves,
        held_back,
        needed_by_added,
        bytecode,
    )


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
    """Lay the projected layer out under `workdir`, run the handler on every committed event in it and apply the
    build's compact step, so whether an added distribution is imported (pandas imports pyarrow when present) is
    seen, not assumed. `base_site`: the current layer.zip's python/, unpacked; `new_site`: the measured tree of
    every distribution not taken from layer.zip (None when there is none)."""
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
            (site / rel).parent.mkdir(parents=True, exist_ok=True)
            link_or_copy(source / rel, site / rel)
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
    # What the build's compact step leaves of `site` (changed in place): the bytes of python/.
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
    compile_files(python, version, site, sourceless, paths.cache / "bytecode", True, LAMBDA_SITE)
    for rel in sourceless:
        (site / rel).unlink()
    return CompactLayer(sum(path.stat().st_size for path in walk_files(site)), len(used.modules), len(used.files))


@dataclass(frozen=True)
class Measured:
    """One distribution as the build would ship it, before any bytecode is added."""

    name: str
    version: str
    wheel: str
    sha256: str
    files: dict[str, int]  # path relative to python/ -> bytes, after pruning and strip
    pyc: dict[str, int]  # .py path -> bytes of its unchecked-hash .pyc
    installed_bytes: int
    import_errors: dict[str, str] = field(default_factory=dict)  # fail even unpruned, beside the current layer
    from_cache: bool = False


@dataclass(frozen=True)
class Measurer:
    python: str
    target: Target
    options: BuildConfig
    cache: Path  # the build's cache directory (strip, bytecode, pyc stores are shared with it)
    scratch: Path  # where wheels are installed for measuring (build/what-if/)
    base_site: Callable[[], Path]  # the current layer's python/, unpacked on first use

    @property
    def setting_key(self) -> str:
        """Everything but the wheel that decides a measurement."""
        parts = [
            rules.fingerprint(self.options.prune),
            repr(self.options.keep),
            repr(self.options.remove),
            self.target.runtime.name,
            self.target.architecture,
            self.target.glibc,
            sources_digest(*MEASURING_CODE),
            str(MEASURE_FORMAT),
        ]
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]

    def measure(self, wheels: Sequence[CachedWheel]) -> dict[str, Measured]:
        """Each wheel's distribution by canonical name; cached ones are read, the rest installed together."""
        found: dict[str, Measured] = {}
        todo = []
        for wheel in wheels:
            try:
                data = json.loads(self._cache_file(wheel).read_text())
            except (OSError, json.JSONDecodeError):
                data = {}
            if data.get("sha256") == wheel.sha256:
                found[wheel.pin.name] = Measured(**{**data, "from_cache": True})
            else:
                todo.append(wheel)
        if todo:
            for measured, wheel in zip(self._measure(todo), sorted(todo, key=lambda w: w.pin.name), strict=True):
                path = self._cache_file(wheel)
                path.parent.mkdir(parents=True, exist_ok=True)
                partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
                partial.write_text(json.dumps({k: v for k, v in asdict(measured).items() if k != "from_cache"}))
                partial.replace(path)  # concurrent what-ifs share the cache: never a torn entry
                found[wheel.pin.name] = measured
        return found

    def _cache_file(self, wheel: CachedWheel) -> Path:
        return self.cache / "what-if" / f"{wheel.sha256[:32]}-{self.setting_key}.json"

    def tree(self, wheels: Sequence[CachedWheel]) -> Path:
        """python/ of these wheels as the build would ship them before bytecode, kept under scratch/trees/ (the
        last measurement of the same wheels left it there): the compact profile runs the handler on them."""
        site = self._tree_dir(wheels)
        if not (site.parent / "done").is_file():
            self._prepare(site, wheels)
            (site.parent / "done").write_text("")
        return site

    def discard_trees(self) -> None:
        """Delete this process's kept trees (hundreds of MB for a large distribution)."""
        for tree in (self.scratch / "trees").glob(f"*-{os.getpid()}"):
            shutil.rmtree(tree, ignore_errors=True)

    def _tree_dir(self, wheels: Sequence[CachedWheel]) -> Path:
        """One per process and wheel set: a what-if beside this one never shares (or deletes) it."""
        key = hashlib.sha256("\0".join([*sorted(w.sha256 for w in wheels), self.setting_key]).encode()).hexdigest()
        return self.scratch / "trees" / f"{key[:16]}-{os.getpid()}" / BUILD_SITE

    def _prepare(self, site: Path, wheels: Sequence[CachedWheel]) -> tuple[list[InstalledDistribution], dict[str, str]]:
        """Install, import (keep what loads), remove, prune and strip, as the build does; the import errors."""
        if site.parent.exists():
            shutil.rmtree(site.parent)
        installed = install_wheels(list(wheels), site, unpacked=self.cache / "unpacked")
        errors: dict[str, str] = {}
        keep = globbed(site, self.options.keep)
        if platform.machine() == self.target.machine:  # imports prove nothing on another machine
            planned = rules.plan(site, self.options.prune)
            runner = verify.Runner(
                self.python, bytecode.for_target(self.cache, self.target.runtime.python), [self.base_site()]
            )
            verdict = verify.baseline(runner, site, [d.name for d in installed], planned, site.parent / "verdict.json")
            (site.parent / "verdict.json").unlink(missing_ok=True)
            keep |= verify.keep_set(verdict)
            errors = {name: error for name, error in verdict.failures.items() if NOT_A_MODULE not in error}
        rules.apply_removals(site, self.options.remove, self.options.keep, strict=False)
        rules.apply_rules(site, self.options.prune, keep)
        if rules.STRIP in self.options.prune:
            strip.strip_tree(site, self.cache / "strip", strip.dlopen_check(self.python))
        return installed, errors

    def _measure(self, wheels: Sequence[CachedWheel]) -> list[Measured]:
        """Prepare the wheels' tree (kept for `tree`), then read each distribution's files and compile its .pyc."""
        self.scratch.mkdir(parents=True, exist_ok=True)
        site = self._tree_dir(wheels)
        (site.parent / "done").unlink(missing_ok=True)
        installed, errors = self._prepare(site, wheels)
        owners = Owners.of_installed((d.name, d.files) for d in installed)
        files: dict[str, dict[str, int]] = {d.name: {} for d in installed}
        for path in walk_files(site):
            rel = path.relative_to(site).as_posix()
            owner = owners.distribution(f"{BUILD_SITE}/{rel}")
            if owner in files:
                files[owner][rel] = path.stat().st_size
        sources = sorted(rel for shipped in files.values() for rel in shipped if rel.endswith(".py"))
        version = self.target.runtime.python
        # Into the tree's __pycache__/ (whoever reads the tree as the build leaves it before bytecode skips them).
        compile_files(self.python, version, site, sources, self.cache / "bytecode", False, LAMBDA_SITE)
        pyc = {rel: (site / pyc_path(rel, version, False)).stat().st_size for rel in sources}
        (site.parent / "done").write_text("")
        return [
            Measured(
                name=d.name,
                version=d.version,
                wheel=d.wheel,
                sha256=wheel.sha256,
                files=dict(sorted(files[d.name].items())),
                pyc={rel: pyc[rel] for rel in sorted(files[d.name]) if rel in pyc},
                installed_bytes=d.bytes,
                import_errors={name: error for name, error in errors.items() if _owned(name, files[d.name], d.name)},
            )
            for d, wheel in zip(installed, sorted(wheels, key=lambda w: w.pin.name), strict=True)
        ]


def _owned(item: str, files: dict[str, int], distribution: str) -> bool:
    """Is the failing check `item` (a module or a distribution's metadata) about this distribution?"""
    top = item.split(".")[0]
    return item == distribution or any(rel.split("/")[0] in (top, f"{top}.py") for rel in files)


def answer_key(config: Config, paths: BuildPaths, current: Current, request: WhatIfRequest) -> str:
    """sha256 of everything that decides the answer: the lock and requirements, the request, the target,
    the rules and build options, the index, the current zips and trace, the limit, the model and events
    the compact profile is measured with, and this code."""
    inputs = current.inputs
    trace = inputs.import_trace
    in_files = sorted({req.file for req in read_in(config.lock.requirements_in, config.root)})
    parts: list[bytes] = [
        current.lock.path.read_bytes(),
        *(path.read_bytes() for path in [config.lock.requirements_in, *in_files]),
        request.digest().encode(),
        repr((config.target.runtime, config.target.architecture, config.target.glibc)).encode(),
        rules.fingerprint(config.build.prune).encode(),
        repr(config.build).encode(),
        config.lock.index_url.encode(),
        current.layer_sha256.encode(),
        sha256_file(inputs.function.path).encode(),
        *(sha256_file(extra.path).encode() for extra in inputs.extra_zips),
        repr(inputs.extra_arns).encode(),
        repr((inputs.limit_bytes, inputs.warn_fraction)).encode(),
        json.dumps([trace.source, sorted(trace.files), trace.distributions] if trace else None).encode(),
        (sha256_file(paths.model) if paths.model.is_file() else "no model").encode(),
        sources_digest(config.smoke.events).encode(),
        sources_digest(CI_PACKAGE / "budget", CI_PACKAGE / "lock", CI_PACKAGE / "layer", CI_PACKAGE / "site").encode(),
    ]
    return hashlib.sha256(b"\0".join(hashlib.sha256(part).digest() for part in parts)).hexdigest()


def fetch_wheels(config: Config, paths: BuildPaths, lock: LockFile, workdir: Path) -> tuple[list[CachedWheel], int]:
    """Every pin's wheel from the build's hashed cache (same hashes, same target tags), downloading only
    the pins it lacks; (wheels, how many were downloaded)."""
    found, missing = find_cached(lock, paths.wheel_cache, config.target)
    if not missing:
        return found, 0
    partial = workdir / "missing.txt"  # only these go to pip: the rest is in the cache already
    partial.write_text("".join(f"{pin.text} {' '.join(f'--hash={h}' for h in pin.hashes)}\n" for pin in missing))
    fetched = fetch(read_lock(partial), paths.wheel_cache, config.target, config.lock.index_url)
    return found + list(fetched.wheels), len(missing)


def what_if(
    config: Config, paths: BuildPaths, request: WhatIfRequest, limit_bytes: int | None = None, fresh: bool = False
) -> tuple[Answer, Projection | None]:
    """The answer (from the cache unless `fresh`), and the projection when it was computed now."""
    started = time.perf_counter()
    current = current_state(config, paths, limit_bytes)
    key = answer_key(config, paths, current, request)
    answer_file = paths.build / "what-if" / "answers" / f"{key}.json"
    if not fresh:
        with contextlib.suppress(OSError, json.JSONDecodeError, TypeError):
            cached = Answer(**{**json.loads(answer_file.read_text()), "from_cache": True})
            cached.timings = {"total": round(time.perf_counter() - started, 2)}
            return cached, None
    timings: dict[str, float] = {}
    workdir = paths.build / "what-if" / key[:16]

    def step(name: str, since: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - since, 2)
        return now

    mark = time.perf_counter()
    lock = resolve(config, paths, request, workdir)
    mark = step("resolve", mark)
    logger.info(f"resolve:  {len(lock.entries)} pins for {target_name(config.target)} [{timings['resolve']:.1f}s]")
    wheels, downloaded = fetch_wheels(config, paths, lock, workdir)
    mark = step("fetch", mark)
    logger.info(
        f"fetch:    {len(wheels)} wheels, {downloaded} downloaded, the rest from the build's cache "
        f"[{timings['fetch']:.1f}s]"
    )
    unchanged: list[CachedWheel] = []  # the current layer ships byte for byte the same wheel
    new: list[CachedWheel] = []
    for wheel in wheels:
        before = current.lock.pins.get(wheel.pin.name)
        same = before is not None and before.version == wheel.pin.version and wheel.sha256 in before.sha256
        (unchanged if same and wheel.pin.name in current.entries else new).append(wheel)
    python = target_python(config.target.runtime.python)
    with contextlib.ExitStack() as held:

        @functools.cache
        def base_site() -> Path:
            """The current layer's python/, unpacked on first use (ci/unpacked_layers.py: checked against the
            zip, shared with the smoke and ABI checks) and held until the measuring ends."""
            layers, layer_zip = paths.unpacked_layers, current.inputs.layer.path
            return held.enter_context(unpacked_layers.reading(layers, layer_zip)) / BUILD_SITE

        measurer = Measurer(python, config.target, config.build, paths.cache, paths.build / "what-if", base_site)
        try:
            measured: dict[str, Measured] = measurer.measure(new)
            mark = step("measure", mark)
            fresh_count = sum(1 for m in measured.values() if not m.from_cache)
            logger.info(
                f"measure:  {len(unchanged)} distributions as build/layer.zip ships them; {len(new)} installed and "
                f"pruned by the build's rules ({fresh_count} measured now, {len(new) - fresh_count} cached) "
                f"[{timings['measure']:.1f}s]"
            )
            moves, notes = moved_pins(current.lock, lock), held_back(config, paths, request, lock)
            shown = display_path(lock.path, config.root)
            projection = project(config, current, request, lock, measured, moves, notes, shown)
            mark = step("project", mark)
            compact: CompactLayer | None = None
            if not current.inputs.compact_profile and projection.budget.status == FAIL:
                # Only an answer over the limit lists options: the handler's trace costs seconds, spent only then.
                new_site = measurer.tree(new) if new else None
                workdir = paths.build / "what-if" / f"compact-{os.getpid()}"
                compact = measure_compact(config, paths, projection, python, base_site(), new_site, workdir)
                shutil.rmtree(workdir, ignore_errors=True)
                step("compact", mark)
                note = (
                    f"not measured: {compact.why_not}"
                    if compact.layer_bytes is None
                    else f"the handler traced on the projected layer ({compact.traced_files} files used); "
                    f"with the compact profile the layer is {as_mb(compact.layer_bytes)}"
                )
                logger.info(f"compact:  {note} [{timings['compact']:.1f}s]")
        finally:
            measurer.discard_trees()
    mark = time.perf_counter()
    imports = current.budget.imports
    never = [canonical(use.name) for use in imports.never_imported] if imports else []
    compact_bytes = None
    if compact is not None and compact.layer_bytes is not None:
        layer = next(c for c in projection.budget.components if c.kind == "layer")
        compact_bytes = projection.budget.used_bytes - layer.unzipped_bytes + compact.layer_bytes
    options_found = removal_options(
        projection.budget.used_bytes,
        projection.budget.limit_bytes,
        projection.entries,
        projection.judged,
        current.inputs.import_trace,
        current.inputs.compact_profile,
        [name for name in never if name not in projection.needed_by_added],
        imports.imported_where if imports else "",
        config.build.remove,
        compact_bytes=compact_bytes,
        compact_how=COMPACT_MEASURED,
    )
    projection = dataclasses.replace(projection, options=options_found)
    step("options", mark)
    timings["total"] = round(time.perf_counter() - started, 2)
    answer = answer_of(projection, timings)
    answer_file.parent.mkdir(parents=True, exist_ok=True)
    partial = answer_file.with_name(f".{answer_file.name}.{os.getpid()}.partial")
    partial.write_text(
        json.dumps({name: value for name, value in asdict(answer).items() if name != "from_cache"}, indent=1)
    )
    partial.replace(answer_file)
    return answer, projection


def run_what_if(
    config: Config,
    paths: BuildPaths,
    specs: list[str],
    files: list[Path],
    limit_bytes: int | None = None,
    fresh: bool = False,
) -> int:
    """The command: print the answer, write reports/budget-what-if.json, exit 0 (pass, warn) or 1 (fail)."""
    request = parse_request(specs, files, Path.cwd())  # a typo fails here, before any work
    asked = {"specs": list(request.specs), "files": [str(path) for path in request.files]}
    try:
        answer, _projection = what_if(config, paths, request, limit_bytes, fresh)
    except UnresolvableError as exc:
        findings = [Finding(CHECK, "error", item.message, item.fix) for item in exc.unfit] or None
        write_report(paths, CHECK, False, {"what_if": asked, "error": exc.problem, "fix": exc.fix}, findings=findings)
        raise
    findings = [Finding.from_dict(item, CHECK) for item in answer.findings]
    cache = "hit" if answer.from_cache else "miss"
    total = answer.timings.get("total", 0.0)
    report = write_report(
        paths, CHECK, answer.passed, {**answer.report, "cache": cache, "answered_in_s": total}, findings=findings
    )
    logs.result(logger, answer.text)
    how = "answered from the cache" if answer.from_cache else "computed"
    logger.info(f"\nwrote {display_path(report, config.root)} ({how} in {total:.1f}s)")
    errors = [finding for finding in findings if finding.severity == "error"]
    if errors:
        raise CheckFailedError(errors[0].message, errors[0].fix)
    return 0


@dataclass
class Answer:
    """What the command prints and writes; rendered once and cached as text + data, so a cached answer
    prints exactly what the first one did."""

    passed: bool
    text: str
    report: dict[str, Any]
    findings: list[dict[str, Any]]
    timings: dict[str, float] = field(default_factory=dict)
    from_cache: bool = False


def answer_of(projection: Projection, timings: dict[str, float]) -> Answer:
    findings = _findings(projection)
    text = render_text(projection, findings)
    report = report_data(projection, timings)
    return Answer(projection.budget.passed, text, report, [finding.to_dict() for finding in findings], timings)


def render_text(projection: Projection, findings: list[Finding]) -> str:
    budget = projection.budget
    comparison = budget.comparison
    assert comparison is not None
    parts = [
        f"What if: requirements.in + {projection.request.describe()}, for {target_name(projection.target)}",
        f"resolved into {projection.lock_shown} (the committed lock is unchanged)",
        headline(budget).replace("Lambda size budget:", "Projected size budget:", 1),
        f"({UNITS_NOTE}; unzipped)",
        "",
    ]
    marks = {"added": "+", "removed": "-", "changed": "~"}
    rows = [
        (
            f"{marks.get(row.status, ' ')} {row.name}",
            HOW.get(projection.how.get(row.name, ""), "removed from the lock"),
            row.before_version or "-",
            row.after_version or "-",
            as_bytes(row.after_bytes),
            signed_mb(row.delta_bytes),
        )
        for row in comparison.changes
    ]
    same = [row for row in comparison.distributions if row.status == "unchanged"]
    headers = ["Distribution", "measured", "before", "after", "unzipped bytes", "delta"]
    parts.append(text_table(headers, rows, numeric_from=2) if rows else "no distribution changes")
    unchanged_bytes = sum(row.after_bytes for row in same)
    parts.append(f"{len(same)} distributions unchanged ({as_mb(unchanged_bytes)}, as build/layer.zip ships them)")
    components = [(c.name, as_bytes(c.unzipped_bytes), mb_cell(c.unzipped_bytes)) for c in budget.components]
    total = ("total", as_bytes(budget.used_bytes), mb_cell(budget.used_bytes))
    parts += ["", table(["What Lambda counts", "unzipped bytes", "MB"], [*components, total])]
    notes = [f for f in findings if f.severity != "error"]
    if notes:
        parts += ["", *(f"{f.severity}: {f.message}" + (f"\n  fix: {f.fix}" if f.fix else "") for f in notes)]
    if budget.status == FAIL:
        parts += ["", "What would make it fit, measured on this projection (largest saving first):"]
        for number, option in enumerate(projection.options, start=1):
            parts.append(f"  {number}. {describe(option, budget.limit_bytes)}")
    return "\n".join(parts)


def _findings(projection: Projection) -> list[Finding]:
    budget = projection.budget
    asked = projection.request.describe()
    found = []
    if budget.status in (FAIL, WARN):
        message = verdict_message(budget) or ""
        first = message.splitlines()[0] if message else budget.status
        fitting = [o for o in projection.options if o.fits(budget.limit_bytes) and o.saves_bytes]
        chosen = fitting[0] if fitting else (projection.options[-1] if projection.options else None)
        fix = (
            ""
            if chosen is None
            else (f"{paste_text(chosen)} ({outcome(chosen, budget.limit_bytes)})" if chosen.paste else chosen.action)
        )
        if budget.status == FAIL:
            found.append(Finding(CHECK, "error", f"with {asked}: {first}", fix))
        else:
            found.append(Finding(CHECK, "warning", f"with {asked}: {first}"))
    for move in projection.moves:
        model = move.name in MODEL_PACKAGES
        message = (
            f"{move.name} {move.before} -> {move.after}: the resolver moves this existing pin to fit {asked} "
            f"(required by {', '.join(move.required_by) or 'the request'})"
            + ("; the model is pickled with it, so the model's pins change" if model else "")
        )
        fix = "retrain after `python -m ci lock` (python -m training) and rerun `python -m ci pins`" if model else ""
        found.append(Finding(CHECK, "warning", message, fix))
    found += [Finding(CHECK, "notice", note) for note in projection.held_back]
    for name, measured in sorted(projection.measured.items()):
        if measured.import_errors:
            first, error = min(measured.import_errors.items())
            more = f" (+{len(measured.import_errors) - 1} more)" if len(measured.import_errors) > 1 else ""
            message = (
                f"{name} {measured.version}: {first} fails to import on {projection.target.runtime.name} beside "
                f"the current layer, even unpruned: {error[:200]}{more}"
            )
            found.append(Finding(CHECK, "warning", message))
    for name, size in sorted(projection.bytecode_if_imported.items()):
        if size:
            message = (
                f"{name} is not imported by the handler yet; once it is, build.bytecode = runtime adds the .pyc "
                f"of what it imports: up to {as_bytes(size)} bytes ({as_mb(size)}) if every module is"
            )
            found.append(Finding(CHECK, "notice", message))
    return found


def report_data(projection: Projection, timings: dict[str, float]) -> dict[str, Any]:
    budget = projection.budget
    comparison = budget.comparison
    assert comparison is not None
    target = projection.target
    return {
        "what_if": {
            "specs": list(projection.request.specs),
            "files": [str(path) for path in projection.request.files],
            "lock": projection.lock_shown,
            "lock_sha256": budget.lock.get("sha256"),
        },
        "target": {"runtime": target.runtime.name, "architecture": target.architecture, "glibc": target.glibc},
        "status": budget.status,
        "used_bytes": budget.used_bytes,
        "limit_bytes": budget.limit_bytes,
        "warn_fraction": budget.warn_fraction,
        "headroom_bytes": budget.headroom_bytes,
        "percent_used": budget.percent_used,
        "current": {"source": comparison.source, "used_bytes": comparison.before_used_bytes},
        "delta_bytes": comparison.delta_bytes,
        "components": [asdict(component) for component in budget.components],
        "distributions": [
            {**asdict(row), "delta_bytes": row.delta_bytes, "measured": projection.how.get(row.name)}
            for row in comparison.distributions
        ],
        "moved_pins": [asdict(move) for move in projection.moves],
        "held_back": projection.held_back,
        "bytecode_if_imported": projection.bytecode_if_imported,
        "import_errors": {name: m.import_errors for name, m in projection.measured.items() if m.import_errors},
        "options": [
            {**asdict(option), "fits": option.fits(budget.limit_bytes), "outcome": outcome(option, budget.limit_bytes)}
            for option in projection.options
        ],
        "timings": timings,
    }
