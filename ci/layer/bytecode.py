"""Step 6, bytecode: unchecked-hash .pyc where it pays, proven by the same checks as every rule.

Lambda's /opt is read-only, so without shipped bytecode every cold start compiles every imported module again
(docs/design.md, "Precompiled bytecode"); modes and the compact profile: docs/commands.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path, PurePosixPath
from typing import Any

from ci import cache_seal
from ci.cache_seal import sources_digest
from ci.errors import CheckFailedError
from ci.isolated import run_isolated
from ci.layer import proofs, pyc_store, trace, verify
from ci.layer.state import BuildState
from ci.site import rules
from ci.site.tree import globbed, link_or_copy, remove_empty_dirs, tree_size, walk_files
from ci.units import as_mb

logger = logging.getLogger(__name__)

UNIMPORTED = "unimported"
LAMBDA_SITE = "/opt/python"  # where the layer's python/ is mounted: tracebacks name real paths
_SEAL = "bytecode"  # the cache seal's purpose: what the layer ships

_COMPILE = r"""
import json, py_compile, sys
for source, target, shown in json.load(open(JOBS)):
    py_compile.compile(source, cfile=target, dfile=shown, doraise=True,
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
print("compiled")
"""


def cache_tag(python_version: str) -> str:
    return "cpython-" + python_version.replace(".", "")


def pyc_path(rel: str, python_version: str, sourceless: bool) -> str:
    """Where the pyc of `rel` (a .py, relative to the site) goes: __pycache__/x.cpython-311.pyc or x.pyc."""
    path = PurePosixPath(rel)
    if sourceless:
        return str(path.with_suffix(".pyc"))
    return str(path.parent / "__pycache__" / f"{path.stem}.{cache_tag(python_version)}.pyc")


def compile_files(
    python: str, python_version: str, site: Path, sources: list[str], cache: Path, sourceless: bool, shown_root: str
) -> tuple[int, int]:
    """Compile `sources` (relative .py paths) into the tree; (files, bytes) of bytecode written.

    Each pyc is cached by its source bytes, its shown path, the Python version and the compiling code, so a warm
    rebuild copies instead of compiling; an entry is used only under its seal (ci/cache_seal.py: made here, not
    by whoever else wrote the cache), anything else is compiled again. The target interpreter compiles (its
    magic number).
    """
    cache.mkdir(parents=True, exist_ok=True)
    compiler = _COMPILE.encode()  # how it compiles (invalidation mode, options) decides the bytes too
    entries: dict[str, list[str]] = {}  # key -> names of its entries, "<key>.<seal>.pyc"
    for name in (path.name for path in cache.iterdir()):
        if name.endswith(".pyc") and name.count(".") == 2:
            entries.setdefault(name.split(".", 1)[0], []).append(name)
    jobs, placed = [], []
    for rel in sources:
        source = site / rel
        shown = f"{shown_root}/{rel}"
        key = hashlib.sha256(b"\0".join([source.read_bytes(), shown.encode(), python_version.encode(), compiler]))
        cached = _sealed_entry(cache, key.hexdigest(), entries.get(key.hexdigest(), []))
        if cached is None:
            cached = cache / f"{key.hexdigest()}.{os.getpid()}.partial"
            jobs.append([str(source), str(cached), shown])
        placed.append((cached, site / pyc_path(rel, python_version, sourceless)))
    if jobs:
        listing = cache / f"jobs-{os.getpid()}.json"
        listing.write_text(json.dumps(jobs))
        try:
            run = run_isolated(python, [], _COMPILE.replace("JOBS", repr(str(listing))), timeout=900)
        finally:
            listing.unlink()
        if run.returncode != 0:
            raise CheckFailedError(
                f"compiling bytecode failed in the target Python:\n{run.stderr.strip()[-800:]}",
                'set build.bytecode = "none" and report the file named',
            )
        placed = [(_seal_entry(cache, cached) if cached.suffix == ".partial" else cached, t) for cached, t in placed]
    size = 0
    for cached, target in placed:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)  # a new file: an installed one may be a hard link into the cache
        link_or_copy(cached, target)
        target.chmod(0o644)
        size += target.stat().st_size
    return len(placed), size


def _sealed_entry(cache: Path, key: str, names: list[str]) -> Path | None:
    """The entry of `key` whose bytes carry this machine's seal; others (forged, torn, foreign) are deleted."""
    for name in names:
        entry = cache / name
        try:
            if cache_seal.matches(cache_seal.seal_file(_SEAL, key, entry), name.split(".")[1]):
                return entry
        except FileNotFoundError:  # removed by a build side by side
            continue
        entry.unlink(missing_ok=True)
    return None


def _seal_entry(cache: Path, partial: Path) -> Path:
    key = partial.name.split(".", 1)[0]
    entry = cache / f"{key}.{cache_seal.seal_file(_SEAL, key, partial)}.pyc"
    partial.replace(entry)
    return entry


def step_trace(state: BuildState) -> trace.ImportTrace:
    """Run the handler on the events over the pruned layer: what it uses, and that it still answers."""
    if not state.executes("trace"):
        state.data["import_trace"] = {"skipped": state.proofs["trace"]}
        logger.info("trace:    skipped, the handler cannot run here (proof 'trace' missing)")
        return trace.ImportTrace(workload="none", modules=[], files=[])
    with state.step("trace"):
        facts = {**state.proof_facts(), **_run_facts(state)}
        reused = state.proof_store.find("trace", facts)
        if reused is not None:
            used = trace.ImportTrace(**reused.result)
        else:
            used = _trace(state, pycache=True)
            if used.workload == "events" and not used.warnings:  # a partial trace is made again, warning again
                state.proof_store.record("trace", facts, {**asdict(used), "log": []})
    state.data["import_trace"] = {
        **used.summary(),
        "bytes": trace.layer_bytes(state.site, used.files),
        "distributions": trace.per_distribution(state.site, used.files, state.top_level),
        "warnings": used.warnings,
    }
    if used.workload == "events":
        # What the handler used answering the events with the model, relative to python/: the budget reads
        # these when no smoke report exists yet (on pull requests the two jobs run side by side).
        state.data["import_trace"]["paths"] = sorted(used.files)
    never = [name for name, n in state.data["import_trace"]["distributions"].items() if not n["imported_files"]]
    if reused is not None:
        state.data["import_trace"]["reused"] = reused.to_json()
        state.proofs["trace"] += f"; {reused.note()}"
    logger.info(
        f"trace:    handler on {len(used.results)} events ({used.workload}"
        + (f"; {reused.note()}" if reused else "")
        + f"): {len(used.modules)} modules, "
        f"{as_mb(state.data['import_trace']['bytes'])} of the layer used; never imported: "
        f"{', '.join(never) or 'none'} [{state.timings['trace']:.1f}s]"
    )
    for warning in used.warnings:
        logger.info(f"  warning: {warning}")
    return used


def step_bytecode(state: BuildState, used: trace.ImportTrace) -> None:
    options = state.options
    site = state.site
    python_version = state.config.target.runtime.python
    if used.workload == "none":  # no interpreter: nothing says which modules run, nor compiles them
        why = "skipped: no import trace (proof 'trace' missing)"
        state.data["bytecode"] = {"mode": "none", "files": 0, "bytes": 0, "configured": options.bytecode, "why": why}
        logger.info(f"bytecode: {why}; the layer ships without bytecode")
        return
    with state.step("bytecode"):
        if options.bytecode == "runtime" and used.workload != "events":
            # Without the model the trace only sees the handler's imports (about a tenth of the runtime's
            # modules): the build would pass and every cold start would recompile the rest, ~3x slower.
            raise CheckFailedError(
                f"build.bytecode = 'runtime' needs an import trace of the handler answering the events, which "
                f"needs the model at {state.paths.model} (not found): without it most runtime modules would ship "
                "without bytecode and every cold start would compile them again",
                f"train first: python -m training --out-dir {state.paths.model_dir} (make pipeline does), "
                "or build with --bytecode all or --bytecode none",
            )
        if options.prune_unimported:
            if used.workload != "events":
                raise CheckFailedError(
                    "build.prune_unimported needs an import trace of the handler on the events with a model",
                    "train the model first (python -m training) so the trace can run the handler",
                )
            _prune_unimported(state, used)
        runtime_sources = [rel for rel in used.modules if rel.endswith(".py")]
        if options.bytecode == "all":
            sources = [p.relative_to(site).as_posix() for p in walk_files(site) if p.suffix == ".py"]
        elif options.bytecode == "runtime":
            sources = runtime_sources
        else:
            sources = []
        sourceless = set(runtime_sources) if options.sourceless else set()
        cache = state.paths.cache / "bytecode"
        files = size = 0
        for group, is_sourceless in ((sorted(set(sources) - sourceless), False), (sorted(sourceless), True)):
            n, b = compile_files(state.python, python_version, site, group, cache, is_sourceless, LAMBDA_SITE)
            files, size = files + n, size + b
        removed_source = 0
        for rel in sorted(sourceless):
            removed_source += (site / rel).stat().st_size
            (site / rel).unlink()
            state.changes[rel] = "sourceless"
        fn_files, fn_bytes = _compile_function(state)
        state.data["bytecode"] = {
            "mode": options.bytecode,
            "files": files,
            "bytes": size,
            "sourceless": options.sourceless,
            "source_bytes_removed": removed_source,
            "function_files": fn_files,
            "function_bytes": fn_bytes,
        }
    total_files, total = tree_size(site)
    logger.info(
        f"bytecode: {options.bytecode}: {files} unchecked-hash .pyc, +{as_mb(size)}"
        + (f", {len(sourceless)} modules sourceless (-{as_mb(removed_source)} of .py)" if sourceless else "")
        + f"; layer now {total_files} files, {as_mb(total)} [{state.timings['bytecode']:.1f}s]"
    )


def step_prove(state: BuildState, before: trace.ImportTrace) -> None:
    """Bytecode and the compact options must not change a single import or answer."""
    options = state.options
    if before.workload == "none":
        logger.info("prove:    skipped (proof 'trace' missing)")
        return
    if not (state.data["bytecode"]["files"] or options.sourceless or options.prune_unimported):
        logger.info("prove:    nothing changed since the verification and the trace")
        return
    with state.step("prove"):
        facts = {
            **state.proof_facts(tree_changed=True),  # now with the bytecode (and the compact profile's changes)
            **_run_facts(state),
            "answers": proofs.json_digest(before.results),
            "changed_by": _what(state),
            "baseline": proofs.json_digest(state.baseline.to_json() if state.baseline else None),
        }

        def make() -> dict[str, Any]:
            _prove_unchanged(state, before)
            return {"proof": state.data["bytecode"]["proof"], "verify": state.data.get("verify_after_bytecode")}

        made, reused = state.proof_store.reuse_or_make("prove", facts, make)
    state.data["bytecode"]["proof"] = {**made["proof"], **({"reused": reused.to_json()} if reused else {})}
    if made["verify"] is not None:
        state.data["verify_after_bytecode"] = made["verify"]
    checked = state.data.get("verify_after_bytecode", {}).get("checked")
    again = f"{checked} imports verified again, " if checked else ""
    logger.info(
        f"prove:    {again}handler answers all {len(before.results)} events as before, from the tree's own "
        f"bytecode{f' ({reused.note()})' if reused else ''} [{state.timings['prove']:.1f}s]"
    )


def _run_facts(state: BuildState) -> dict[str, str]:
    """What else decides a run of the handler: its package, name, the events, the model and the lock."""
    return {
        "function": proofs.tree_digest(state.function_tree) if state.function_tree.is_dir() else "none",
        "handler": state.config.function.handler,
        "events": sources_digest(state.config.smoke.events),
        "model": proofs.file_digest(state.paths.model),
        "layer_lock": proofs.file_digest(state.config.lock.layer_lock),
    }


def _trace(state: BuildState, pycache: bool) -> trace.ImportTrace:
    """The handler on the events, on the tree as it is now; a failure names the rule behind it."""
    try:
        traced = trace.trace_handler(
            state.python,
            state.site,
            state.function_tree,
            state.config.function.handler,
            state.config.smoke.events,
            state.paths.model,
            pycache=pyc_store.for_target(state.paths.cache, state.config.target.runtime.python) if pycache else None,
            layer_lock=state.config.lock.layer_lock,
            extra_paths=state.behind,
        )
    except trace.TraceError as exc:
        raise _attributed(exc.problem, exc.detail, state) from exc
    broken = traced.broken_answers()
    if broken:
        errors = "\n".join(line for line in traced.log if "error" in line.lower()) or "(no error logged)"
        raise _attributed(
            f"the handler answered {len(broken)} event(s) with a server error on the pruned layer "
            f"(events #{', #'.join(map(str, broken[:5]))}):\n" + errors[-1500:],
            errors,
            state,
        )
    return traced


def _attributed(problem: str, detail: str, state: BuildState) -> CheckFailedError:
    cause = verify.cause_of("", detail, "\0", state.diagnosis())
    blame = "".join(f"\n  {rules.describe(rule)} removed/changed {path}" for path, rule in cause.culprits[:5])
    return CheckFailedError(problem + (blame or f"\n  {cause.detail}"), cause.fix)


def _prune_unimported(state: BuildState, used: trace.ImportTrace) -> None:
    """Remove what the trace never imported, opened or mapped (METADATA, licenses and dist-info stay)."""
    site = state.site
    keep = set(used.files) | globbed(site, state.options.keep)
    result = rules.RuleResult(UNIMPORTED)
    for path in list(walk_files(site)):
        rel = path.relative_to(site).as_posix()
        pure = PurePosixPath(rel)
        if rel in keep or rules.always_kept(pure) or any(p.endswith(".dist-info") for p in pure.parts):
            continue
        result.files += 1
        result.bytes += path.stat().st_size
        result.paths.append(rel)
        path.unlink()
        state.changes[rel] = UNIMPORTED
    remove_empty_dirs(site)
    state.data["rules"][UNIMPORTED] = result.summary()
    logger.info(f"  - {UNIMPORTED:<12} {result.files:>5} files {as_mb(result.bytes):>9} never used by the handler")


def _compile_function(state: BuildState) -> tuple[int, int]:
    """The handler package's own unchecked-hash pyc (beside its sources) unless bytecode is off."""
    if state.options.bytecode == "none" or not state.function_tree.is_dir():
        return 0, 0
    sources = [p.relative_to(state.function_tree).as_posix() for p in walk_files(state.function_tree)]
    sources = [rel for rel in sources if rel.endswith(".py")]
    return compile_files(
        state.python,
        state.config.target.runtime.python,
        state.function_tree,
        sources,
        state.paths.cache / "bytecode",
        False,
        "/var/task",
    )


def _prove_unchanged(state: BuildState, before: trace.ImportTrace) -> None:
    """Bytecode (and the compact options) must not change a single import or answer."""
    if state.options.sourceless or state.options.prune_unimported:
        assert state.baseline is not None
        result = verify.verify_tree(
            state.python,
            state.site,
            state.distributions,
            state.baseline,
            extra_paths=state.behind,
        )
        state.data["verify_after_bytecode"] = {"checked": result.checked, "new_failures": result.new_failures}
        if not result.passed:
            raise verify.explain(result, state.diagnosis())
    after = _trace(state, pycache=False)  # the tree's own bytecode, nothing from a cache
    trace.compare_results(before, after, _what(state))
    missing = sorted(set(after.modules) - set(before.modules) - _pyc_of(before.modules, state))
    state.data["bytecode"]["proof"] = {"events": len(after.results), "same_answers": True}
    if missing and state.options.prune_unimported:
        logger.info(f"  note: {len(missing)} modules imported after pruning that were not before: {missing[:3]}")


def _pyc_of(modules: list[str], state: BuildState) -> set[str]:
    version = state.config.target.runtime.python
    return {pyc_path(rel, version, True) for rel in modules if rel.endswith(".py")}


def _what(state: BuildState) -> str:
    parts = [f"bytecode={state.options.bytecode}"]
    if state.options.sourceless:
        parts.append("sourceless")
    if state.options.prune_unimported:
        parts.append("prune_unimported")
    return " + ".join(parts)
