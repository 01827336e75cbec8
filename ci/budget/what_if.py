"""`python -m ci budget --what-if SPEC ...`: would the layer still fit with these packages, and if not, what would?

resolve -> fetch -> measure what is new -> project -> judge -> options, touching none of the build's outputs
or the locks; answers are cached under build/what-if/answers/ by everything that decides them.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path

from ci import logs, unpacked_layers
from ci.budget.model import FAIL
from ci.budget.options import removal_options
from ci.budget.projection import Measured, Measurer
from ci.budget.render_what_if import CHECK, Answer, answer_of
from ci.budget.what_if_compact import CompactLayer, measure_compact
from ci.budget.what_if_current import Current, current_state
from ci.budget.what_if_project import Projection, project
from ci.budget.what_if_resolve import UnresolvableError, held_back, moved_pins, resolve
from ci.budget.what_if_specs import WhatIfRequest, parse_request
from ci.budget.wheel_reasons import target_name
from ci.cache_seal import sources_digest
from ci.config import Config
from ci.errors import CheckFailedError
from ci.isolated import target_python
from ci.layer.wheels import CachedWheel, fetch, find_cached
from ci.lock.files import display_path, read_in
from ci.lock.lockfile import LockFile, read_lock
from ci.paths import BuildPaths
from ci.reports import Finding, sha256_file, write_report
from ci.site import rules
from ci.site.owners import BUILD_SITE, canonical
from ci.units import as_mb

logger = logging.getLogger(__name__)

CI_PACKAGE = Path(__file__).resolve().parents[1]


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


def answers_dir(paths: BuildPaths) -> Path:
    return paths.build / "what-if" / "answers"


def cached_answer(paths: BuildPaths, key: str) -> Answer | None:
    try:
        data = json.loads((answers_dir(paths) / f"{key}.json").read_text())
        return Answer(**{**data, "from_cache": True})
    except (OSError, json.JSONDecodeError, TypeError):
        return None


def store_answer(paths: BuildPaths, key: str, answer: Answer) -> None:
    target = answers_dir(paths) / f"{key}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    data = {name: value for name, value in answer.__dict__.items() if name != "from_cache"}
    partial.write_text(json.dumps(data, indent=1))
    partial.replace(target)


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
    config: Config,
    paths: BuildPaths,
    request: WhatIfRequest,
    limit_bytes: int | None = None,
    fresh: bool = False,
) -> tuple[Answer, Projection | None]:
    """The answer (from the cache unless `fresh`), and the projection when it was computed now."""
    started = time.perf_counter()
    current = current_state(config, paths, limit_bytes)
    key = answer_key(config, paths, current, request)
    if not fresh:
        cached = cached_answer(paths, key)
        if cached is not None:
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
    unchanged, new = _split(current, wheels)
    python = target_python(config.target.runtime.python)
    with contextlib.ExitStack() as held:

        @functools.cache
        def base_site() -> Path:
            """The current layer's python/, unpacked on first use (ci/unpacked_layers.py: checked against the
            zip, shared with the smoke and ABI checks) and held until the measuring ends."""
            layers, layer_zip = paths.unpacked_layers, current.inputs.layer.path
            return held.enter_context(unpacked_layers.reading(layers, layer_zip)) / BUILD_SITE

        measurer = Measurer(
            python=python,
            target=config.target,
            options=config.build,
            cache=paths.cache,
            scratch=paths.build / "what-if",
            base_site=base_site,
        )
        try:
            measured: dict[str, Measured] = measurer.measure(new)
            mark = step("measure", mark)
            fresh_count = sum(1 for m in measured.values() if not m.from_cache)
            logger.info(
                f"measure:  {len(unchanged)} distributions as build/layer.zip ships them; {len(new)} installed and "
                f"pruned by the build's rules ({fresh_count} measured now, {len(new) - fresh_count} cached) "
                f"[{timings['measure']:.1f}s]"
            )
            projection = project(
                config,
                current,
                request,
                lock,
                measured,
                moves=moved_pins(current.lock, lock),
                held_back=held_back(config, paths, request, lock),
                lock_shown=display_path(lock.path, config.root),
            )
            mark = step("project", mark)
            compact: CompactLayer | None = None
            if not current.inputs.compact_profile and projection.budget.status == FAIL:
                # Only an answer over the limit lists options: the handler's trace costs seconds, spent only then.
                new_site = measurer.tree(new) if new else None
                workdir = paths.build / "what-if" / f"compact-{os.getpid()}"
                compact = measure_compact(config, paths, projection, python, base_site(), new_site, workdir)
                shutil.rmtree(workdir, ignore_errors=True)
                step("compact", mark)
                logger.info(f"compact:  {_compact_note(compact)} [{timings['compact']:.1f}s]")
        finally:
            measurer.discard_trees()
    mark = time.perf_counter()
    imports = current.budget.imports
    never = [canonical(use.name) for use in imports.never_imported] if imports else []
    compact_bytes = None
    if compact is not None and compact.layer_bytes is not None:
        layer = next(c for c in projection.budget.components if c.kind == "layer")
        compact_bytes = projection.budget.used_bytes - layer.unzipped_bytes + compact.layer_bytes
    projection = projection.with_options(
        removal_options(
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
    )
    step("options", mark)
    timings["total"] = round(time.perf_counter() - started, 2)
    answer = answer_of(projection, timings)
    store_answer(paths, key, answer)
    return answer, projection


COMPACT_MEASURED = (
    "every file the handler never used on the committed events in the projected layer (measured: the "
    "build's trace run on it, added distributions included) and the .py of every module it imported, "
    "which ships as its .pyc"
)


def _compact_note(compact: CompactLayer) -> str:
    if compact.layer_bytes is None:
        return f"not measured: {compact.why_not}"
    return (
        f"the handler traced on the projected layer ({compact.traced_files} files used); "
        f"with the compact profile the layer is {as_mb(compact.layer_bytes)}"
    )


def _split(current: Current, wheels: list[CachedWheel]) -> tuple[list[CachedWheel], list[CachedWheel]]:
    """(wheels the current layer already ships, byte for byte the same wheel; wheels to measure)."""
    unchanged: list[CachedWheel] = []
    new: list[CachedWheel] = []
    for wheel in wheels:
        before = current.lock.pins.get(wheel.pin.name)
        same = before is not None and before.version == wheel.pin.version and wheel.sha256 in before.sha256
        (unchanged if same and wheel.pin.name in current.entries else new).append(wheel)
    return unchanged, new


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
