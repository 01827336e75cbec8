"""`python -m ci build`, top-down: fetch -> install -> pristine -> prune -> verify + abi -> trace -> bytecode
-> prove -> zip -> report.

Each step prints one line saying what it did and returns the facts build.json records; every cache is
keyed by content, so a warm rebuild redoes the work from the wheels and still proves it.
"""

from __future__ import annotations

import fcntl
import logging
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ci.arch.interpreter import find_interpreter
from ci.config import Config
from ci.errors import CheckFailedError, ConfigError
from ci.layer import archive, proofs, pyc_store, sources, strip, verify
from ci.layer.bytecode import step_bytecode, step_prove, step_trace
from ci.layer.pyc_store import PycStore
from ci.layer.state import BuildState
from ci.layer.wheels import fetch, install_wheels, read_layer_lock
from ci.paths import BuildPaths
from ci.pins.guard import model_precondition
from ci.site import rules
from ci.site.owners import BUILD_SITE, Owners
from ci.site.tree import globbed, tree_size, walk_files
from ci.units import as_mb

logger = logging.getLogger(__name__)


def build_layer(
    config: Config,
    paths: BuildPaths,
    config_file: Path | None = None,
    reuse_proofs: bool = True,
) -> dict[str, Any]:
    """Run every step; returns build.json's data. Raises PipelineError (with a fix) on any failure.

    Two builds of the same build directory take turns (a file lock): each deletes and rewrites
    build/layer/, so running them at once would pull files from under each other.
    The previous build's outputs are deleted first: a failed or interrupted build (Ctrl-C) must not
    leave zips that pass for its own. `config_file`: the file `config` was read from (recorded).
    `reuse_proofs` False makes every proof again (proofs.py: by default one made on these exact bytes is reused).
    """
    paths.build.mkdir(parents=True, exist_ok=True)
    with (paths.build / ".build.lock").open("w") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info(f"waiting:  another build of {paths.build} is running")
            fcntl.flock(lock_file, fcntl.LOCK_EX)
        remove_outputs(paths)
        try:
            return _build_layer(config, paths, config_file, reuse_proofs)
        except BaseException:
            remove_outputs(paths)  # e.g. layer.zip written, function.zip not
            raise


def remove_outputs(paths: BuildPaths) -> None:
    for output in (paths.layer_zip, paths.function_zip, paths.report("build")):
        output.unlink(missing_ok=True)


def _build_layer(config: Config, paths: BuildPaths, config_file: Path | None, reuse_proofs: bool) -> dict[str, Any]:
    # Digests of what this build is made from, taken before it reads any: the gate compares them.
    recorded = sources.record(config, paths, config_file)
    if paths.model.is_file():
        # The import trace unpickles the model: refuse it as `ci pins` would, before any work.
        model_precondition(config, paths.model)
    state = BuildState(
        config=config,
        paths=paths,
        reuse_proofs=reuse_proofs,
        interpreter=find_interpreter(config.target, paths.cache),
    )
    logger.info(f"machine:  {config.target.machine} code runs {state.interpreter.proof().removeprefix('proven ')}")
    started = time.perf_counter()
    step_fetch(state)
    step_install(state)
    step_pristine(state)
    step_prune(state)
    # The ABI check reads ELF headers in this process while the verification's interpreters run:
    # two independent proofs on two cores.
    with ThreadPoolExecutor(max_workers=1) as pool:
        abi = pool.submit(step_abi, state)
        step_verify(state)
        abi.result()
    step_stage_function(state)
    used = step_trace(state)
    step_bytecode(state, used)
    step_prove(state, used)
    step_zip(state)
    state.timings["total"] = round(time.perf_counter() - started, 2)
    missing = {name: how for name, how in state.proofs.items() if how.startswith("missing")}
    if missing:
        # Imports prove nothing on a host that cannot load the target's machine code (every extension would
        # fail before and after pruning alike): the proofs are recorded as missing, and deploy refuses them.
        logger.warning(
            f"WARNING:  proofs missing: {', '.join(missing)}; `ci deploy` refuses this build until they exist"
        )
        logger.warning(f"          {next(iter(missing.values()))}")
    return {**report_data(state), "sources": recorded}


def step_fetch(state: BuildState) -> None:
    with state.step("fetch"):
        lock = read_layer_lock(state.config.lock.layer_lock)
        cache = state.paths.wheel_cache
        result = fetch(lock, cache, state.config.target, state.config.lock.index_url)
    state.lock, state.wheels = lock, result.wheels
    state.data["lock"] = {"path": lock.path.name, "sha256": lock.digest, "pins": len(lock.entries)}
    state.data["wheels"] = sorted(wheel.path.name for wheel in result.wheels)
    state.data["cache"] = "cold" if result.downloaded else "warm"
    source = "downloaded from the index" if result.downloaded else "all from the cache, no network"
    logger.info(
        f"fetch:    {len(result.wheels)} wheels, {as_mb(result.bytes)} ({source}) [{state.timings['fetch']:.1f}s]"
    )


def step_install(state: BuildState) -> None:
    with state.step("install"):
        if state.paths.layer_tree.exists():
            shutil.rmtree(state.paths.layer_tree)
        state.installed = install_wheels(state.wheels, state.site, unpacked=state.paths.cache / "unpacked")
    files, size = tree_size(state.site)
    state.data["installed"] = {"files": files, "bytes": size}
    dropped = {f"{d.name}: .data/{scheme}": n for d in state.installed for scheme, n in d.dropped.items()}
    state.data["dropped_data"] = dropped
    note = f"; dropped {sum(dropped.values())} files of .data/scripts|headers|data" if dropped else ""
    logger.info(
        f"install:  {len(state.installed)} distributions, {files} files, {as_mb(size)}{note} "
        f"[{state.timings['install']:.1f}s]"
    )


def step_pristine(state: BuildState) -> None:
    """Verify the unpruned tree once per lock and rule set (cached): what fails anyway, what imports load."""
    assert state.lock is not None
    options = state.options
    target = state.config.target
    if not state.executes("imports"):
        state.keep = globbed(state.site, options.keep)
        state.data["pristine"] = {"skipped": state.proofs["imports"]}
        logger.info(f"pristine: skipped, nothing can import {target.machine} code here (proof 'imports' missing)")
        return
    view = state.runtime()
    cache_file = verify.baseline_cache_file(state.paths.cache, state.lock.digest, target, options.prune, view.key)
    cached = cache_file.is_file()
    with state.step("pristine"):
        planned = rules.plan(state.site, options.prune)
        state.baseline = verify.baseline(
            state.python,
            state.site,
            state.distributions,
            planned,
            cache_file,
            pycache=_pycache(state),
            extra_paths=state.behind,
        )
        state.keep = verify.keep_set(state.baseline) | globbed(state.site, options.keep)
    failing = ", ".join(state.baseline.failures) or "none"
    state.data["pristine"] = {"failures": state.baseline.failures, "kept_for_imports": len(state.keep)}
    logger.info(
        f"pristine: unpruned tree {'verified before (cached)' if cached else 'verified'}; fails anyway: {failing}; "
        f"{len(state.keep)} files its imports load are kept [{state.timings['pristine']:.1f}s]"
    )


def step_prune(state: BuildState) -> None:
    options = state.options
    with state.step("prune"):
        # build.remove first, and not spared for the verification's imports as the rules are: it names what
        # to remove, and the checks after it (verify, trace) fail naming the glob if something needed it.
        removed = rules.apply_removals(state.site, options.remove, options.keep)
        results: dict[str, rules.RuleResult] = dict(rules.apply_rules(state.site, options.prune, state.keep))
        if rules.STRIP in options.prune:
            results[rules.STRIP] = _strip(state)
        ordered = {**removed, **{name: results[name] for name in options.prune}}
    for result in ordered.values():
        state.changes.update({path: result.name for path in result.paths})
    state.data["rules"] = {name: result.summary() for name, result in ordered.items()}
    files, size = tree_size(state.site)
    removed_bytes = sum(r.bytes for r in ordered.values())
    globs = f" and {len(removed)} build.remove globs" if removed else ""
    logger.info(
        f"prune:    {len(ordered) - len(removed)} rules{globs} removed {as_mb(removed_bytes)}; "
        f"layer now {files} files, {as_mb(size)}"
    )
    for result in ordered.values():
        extra = ""
        if isinstance(result, strip.StripResult) and result.restored:
            extra = f", {len(result.restored)} restored (stripped copy did not load)"
        if result.spared:
            why = "build.keep, metadata or licenses" if result.name in removed else "imported by the verification"
            extra += f", {len(result.spared)} kept ({why})"
        logger.info(f"  - {result.name:<12} {result.files:>5} files {as_mb(result.bytes):>9}{extra}")
    logger.info(f"  [{state.timings['prune']:.1f}s]")


def _strip(state: BuildState) -> strip.StripResult:
    """Strip only where each stripped file can be proven to load (dlopen in the target's interpreter)."""
    if not state.interpreter.available:
        skipped = strip.StripResult(rules.STRIP)
        skipped.failed["*"] = f"not applied: a stripped file must be proven to load, and {state.interpreter.proof()}"
        return skipped
    state.proofs["strip"] = state.interpreter.proof()
    tool = strip.strip_tool(state.config.target.machine)
    load_check = strip.dlopen_check(state.python, state.behind)
    return strip.strip_tree(state.site, state.paths.cache / "strip", load_check, tool)


def step_verify(state: BuildState) -> None:
    if state.baseline is None:  # no interpreter: step_pristine recorded the proof as missing
        state.data["verify"] = {"skipped": state.proofs["imports"]}
        logger.info("verify:   skipped (proof 'imports' missing)")
        return
    baseline = state.baseline
    with state.step("verify"):
        facts = {
            **state.proof_facts(),
            "distributions": " ".join(sorted(state.distributions)),
            "baseline": proofs.json_digest(baseline.to_json()),
        }

        def make() -> dict[str, Any]:
            result = verify.verify_tree(
                state.python,
                state.site,
                state.distributions,
                baseline,
                pycache=_pycache(state),
                extra_paths=state.behind,
            )
            if not result.passed:
                raise verify.explain(result, state.diagnosis())
            return asdict(result)

        made, reused = state.proof_store.reuse_or_make("verify", facts, make)
    result = verify.Verification(**made)
    state.data["verify"] = {
        "checked": result.checked,
        "failures": result.failures,
        "pristine_failures": result.pristine_failures,
        "new_failures": result.new_failures,
    }
    how = f"in an isolated Python {state.config.target.runtime.python} (layer + the runtime's packages)"
    if reused is not None:
        state.data["verify"]["reused"] = reused.to_json()
        state.proofs["imports"] += f"; {reused.note()}"
        how = f"({reused.note()})"
    logger.info(
        f"verify:   {result.checked} imports and versions checked {how}; {len(result.failures)} fail as in a "
        f"pristine install ({', '.join(result.failures) or 'none'}) [{state.timings['verify']:.1f}s]"
    )


def step_abi(state: BuildState) -> None:
    from ci.abi.check import check_tree

    with state.step("abi"):
        violations = check_tree(state.paths.layer_tree, state.config.target)
    state.data["abi"] = {"violations": len(violations)}
    if violations:
        lines = "\n".join(f"  {v.path} ({v.distribution or 'unknown'}): {v.message}" for v in violations[:20])
        raise CheckFailedError(
            f"{len(violations)} file(s) cannot load on {state.config.target.runtime.name} "
            f"{state.config.target.architecture}:\n{lines}",
            "see the fix in each message; `python -m ci abi` writes the full list to build/reports/abi.json",
        )
    logger.info(f"abi:      every ELF file fits {state.config.target.extension_suffix} [{state.timings['abi']:.1f}s]")


def step_zip(state: BuildState) -> None:
    with state.step("zip"):
        deflated = state.paths.cache / "deflate"
        layer = archive.write_zip(archive.tree_entries(state.paths.layer_tree), state.paths.layer_zip, deflated)
        function = archive.write_zip(function_entries(state), state.paths.function_zip)
    state.data["layer"] = layer.to_json()
    state.data["function"] = function.to_json()
    logger.info(
        f"zip:      layer.zip {as_mb(layer.zipped_bytes)} "
        f"({as_mb(layer.unzipped_bytes)} unzipped, {layer.files} files), "
        f"function.zip {function.zipped_bytes} bytes ({function.files} files) [{state.timings['zip']:.1f}s]"
    )
    logger.info(f"          layer.zip sha256 {layer.sha256}")


def function_entries(state: BuildState) -> list[tuple[str, Path]]:
    """The handler package alone: its .py files (and the bytecode step's pyc, if any)."""
    return archive.tree_entries(state.function_tree)


def step_stage_function(state: BuildState) -> None:
    """Copy the handler package (its *.py and *.txt data only: no tests, no caches) to build/function/."""
    module = state.config.function.handler.rsplit(".", 1)[0]
    package = module.split(".")[0]
    source = state.config.root / package
    if not source.is_dir():
        raise ConfigError(
            f"function.handler = {state.config.function.handler!r} but {source} is not a directory",
            "set function.handler to <package>.<module>.<function> of the handler package",
        )
    if state.function_tree.exists():
        shutil.rmtree(state.function_tree)
    for path in sources.handler_files(source):
        rel = path.relative_to(source)
        target = state.function_tree / package / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        target.chmod(0o644)
    files, size = tree_size(state.function_tree)
    logger.info(f"function: {package}/ staged, {files} files, {size} bytes")


def report_data(state: BuildState) -> dict[str, Any]:
    owners = Owners.of_installed((d.name, d.files) for d in state.installed)
    top_level = owners.completed_top_level(child.name for child in state.site.iterdir())  # + sourceless six.pyc
    per_dist: dict[str, dict[str, Any]] = {
        d.name: {"version": d.version, "files": 0, "bytes": 0, "installed_files": len(d.files),
                 "installed_bytes": d.bytes}
        for d in state.installed
    }  # fmt: skip
    for path in walk_files(state.site):
        owner = owners.distribution(f"{BUILD_SITE}/{path.relative_to(state.site).as_posix()}")
        if owner in per_dist:
            per_dist[owner]["files"] += 1
            per_dist[owner]["bytes"] += path.stat().st_size
    public = dict(state.data)
    return {
        "layer": public.pop("layer"),
        "function": public.pop("function"),
        "rules": public.pop("rules"),
        "distributions": dict(sorted(per_dist.items())),
        "top_level": dict(sorted(top_level.items())),
        "bytecode": public.pop("bytecode", {"mode": "none", "files": 0, "bytes": 0}),
        "timings": {**state.timings, "cache": public.pop("cache")},
        "target": {
            "runtime": state.config.target.runtime.name,
            "architecture": state.config.target.architecture,
            "glibc": state.config.target.glibc,
        },
        # What executed the target's code, and each proof that needs it: made natively, under emulation, or
        # "missing: ..." (the deploy gate refuses a build with a missing proof, naming it).
        "interpreter": state.interpreter.to_json(),
        "proofs": dict(sorted(state.proofs.items())),
        **public,
    }


def _pycache(state: BuildState) -> PycStore:
    return pyc_store.for_target(state.paths.cache, state.config.target.runtime.python)
