"""From the zips, the build's report and the import trace to one `Budget`, its delta against a baseline, and what
could make room. Counting follows Lambda: the uncompressed size of every entry of the function zip and every layer."""

import dataclasses
import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from ci.budget.render import (
    TRACE_BUILD,
    TRACE_SMOKE,
    Budget,
    Bytecode,
    Comparison,
    Component,
    DistributionDelta,
    DistributionUse,
    FileSize,
    Group,
    ImportUsage,
    RuleRemoval,
    Suggestion,
    budget_to_dict,
)
from ci.cache_seal import sources_digest
from ci.config import Config
from ci.config_sections import LAMBDA_UNZIPPED_LIMIT
from ci.errors import ConfigError, PipelineError, toml_value
from ci.lock.lockfile import display_path
from ci.paths import REPO_ROOT, BuildPaths
from ci.reports import REPORT_FORMAT, sha256_file
from ci.site.owners import Owners, canonical
from ci.site.rules import in_vendored_libs
from ci.units import as_mb
from ci.zipsafe import open_zip


class Entry(NamedTuple):
    path: str  # as stored in the zip, e.g. python/numpy/__init__.py
    unzipped_bytes: int  # ZipInfo.file_size
    zipped_bytes: int  # ZipInfo.compress_size


class ZipContents(NamedTuple):
    name: str  # how reports call it: function.zip, layer.zip, or an extra layer's file name
    kind: str  # function | layer | extra layer
    path: Path
    entries: tuple[Entry, ...]  # files only, in zip order


def read_zip(path: Path, name: str, kind: str, how_to_make: str, shown: Path | None = None) -> ZipContents:
    """The file entries of `path`; `shown`: the artifact `path` is a snapshot of, named in messages."""
    if not path.is_file():
        raise PipelineError(f"{shown or path} not found: the budget needs the {name} Lambda will unpack", how_to_make)
    with open_zip(path, how_to_make, shown) as archive:  # refuses links, duplicates and escaping names
        entries = tuple(Entry(info.filename, info.file_size, info.compress_size) for info in archive.files)
    return ZipContents(name, kind, path, entries)


LAYER_PREFIX = "python/"
UNATTRIBUTED = "(unattributed)"

EXTENSION_MODULES = "extension modules"
VENDORED_LIBRARIES = "vendored shared libraries"
PYTHON_SOURCE = "Python source"
BYTECODE = "bytecode"
DATA = "data"
METADATA = "metadata"
CATEGORIES = (EXTENSION_MODULES, VENDORED_LIBRARIES, PYTHON_SOURCE, BYTECODE, DATA, METADATA)

_SHARED_OBJECT = re.compile(r"\.so(\.\d+)*$")


def category(path: str) -> str:
    folders = path.split("/")[:-1]
    name = path.rsplit("/", 1)[-1]
    if any(folder.endswith((".dist-info", ".egg-info")) for folder in folders):
        return METADATA
    if in_vendored_libs(path):
        return VENDORED_LIBRARIES
    if name.endswith(".pyc"):
        return BYTECODE
    if name.endswith((".py", ".pyi")):
        return PYTHON_SOURCE
    if _SHARED_OBJECT.search(name):
        return EXTENSION_MODULES
    return DATA


def attribute(
    layer: ZipContents, top_level: Mapping[str, str], names: Sequence[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """Each layer path's distribution (spelled as the build report does) and each distribution's version."""
    display = {canonical(name): name for name in names}

    def spelled(distribution: str) -> str:
        return display.setdefault(canonical(distribution), canonical(distribution))

    paths = [entry.path for entry in layer.entries]
    with open_zip(layer.path, "rebuild it: `python -m ci build`") as archive:  # one opening for every read
        owners = Owners.of_entries(paths, archive.read, top_level=top_level, names=names)
    site = LAYER_PREFIX.rstrip("/")
    versions = {spelled(d.name): d.version for d in owners.dists if d.site == site and d.version}
    owner = {}
    for path in paths:
        found = owners.distribution(path) if path.startswith(LAYER_PREFIX) else None
        owner[path] = UNATTRIBUTED if found is None else spelled(found)
    return owner, versions


class ImportTrace(NamedTuple):
    """What the handler really imported: smoke.json's "import_trace", or build.json's (see import_trace)."""

    report: str
    same_layer: bool
    files: list[str]
    source: str = TRACE_SMOKE  # TRACE_SMOKE | TRACE_BUILD


_PYC_IN_CACHE = re.compile(r"^(?P<dir>.*?)__pycache__/(?P<stem>[^/.]+)\.[^/]*\.pyc$")


def module_key(path: str) -> str | None:
    """python/a/b/c for python/a/b/c.py, python/a/b/__pycache__/c.cpython-311.pyc and python/a/b/c.pyc."""
    match = _PYC_IN_CACHE.match(path)
    if match:
        return match["dir"] + match["stem"]
    stem, dot, suffix = path.rpartition(".")
    return stem if dot and suffix in ("py", "pyc") else None


def traced_paths(trace: ImportTrace, entries: list[Entry]) -> set[str]:
    """Layer paths the trace saw; a module's .pyc is read when it is imported, so it counts too."""
    traced = {path if path.startswith(LAYER_PREFIX) else LAYER_PREFIX + path.lstrip("/") for path in trace.files}
    modules = {module_key(path) for path in traced} - {None}
    traced |= {e.path for e in entries if e.path.endswith(".pyc") and module_key(e.path) in modules}
    return traced & {e.path for e in entries}


def compact_removals(entries: Iterable[Entry], trace: ImportTrace | None) -> set[str]:
    """Paths the compact profile would drop: .py shipped with its .pyc and, given a trace, every file never imported."""
    entries = list(entries)
    compiled = {module_key(e.path) for e in entries if e.path.endswith(".pyc")}
    removable = {e.path for e in entries if e.path.endswith(".py") and module_key(e.path) in compiled}
    imported = traced_paths(trace, entries) if trace and trace.files else None
    if imported is not None:
        removable |= {e.path for e in entries if e.path not in imported and category(e.path) != METADATA}
    return removable


CONTAINER_IMAGE_LIMIT = 10 * 1024**3  # Lambda: container images up to 10 GB, uncompressed, all layers included
COMPACT_LINES = ("sourceless = true", "prune_unimported = true")
COMPACT_MEASURED = (
    "every file the handler never used on the committed events in the projected layer (measured: the "
    "build's trace run on it, added distributions included) and the .py of every module it imported, "
    "which ships as its .pyc"
)


def suggest(name: str, action: str, paste: Sequence[str], section: str, saves: int | None, used: int) -> Suggestion:
    """The one projection: `saves` bytes out of the `used` bytes counted now leaves the difference."""
    leaves = None if saves is None else used - saves
    return Suggestion(name, action, tuple(paste), section, saves, leaves)


def remove_globs(entries: Iterable[Entry]) -> list[str]:
    """[build] remove globs for what these entries install; metadata stays (importlib.metadata must answer)."""
    globs = set()
    for entry in entries:
        parts = entry.path.removeprefix(LAYER_PREFIX).split("/")
        if parts[0].endswith(".dist-info"):
            continue
        if parts[0] == "__pycache__" and len(parts) == 2:  # a top-level module's bytecode: six.cpython-311.pyc
            globs.add(f"__pycache__/{parts[1].split('.')[0]}.*")
        else:
            globs.add(f"{parts[0]}/*" if len(parts) > 1 else parts[0])
    return sorted(globs)


def remove_line(configured: Sequence[str], globs: Iterable[str]) -> str:
    """`remove = [...]`: the configured globs and the new ones, so pasting it replaces the key whole."""
    return f"remove = {toml_value([*configured, *(g for g in globs if g not in configured)])}"


def removal_options(
    budget: Budget,  # its used and limit bytes: what each option is measured against
    inputs: "BudgetInputs",  # the current build's: its import trace, compact profile and configured removals
    imports: ImportUsage | None,  # what that trace says
    entries: Mapping[str, list[Entry]],  # distribution -> its entries in the layer as it would ship
    judged: set[str],  # distributions the trace can speak for
    never_imported: Iterable[str],
    folders: Sequence[Group] = (),  # package folders nothing was imported from ("sklearn/cluster")
    compact_bytes: int | None = None,  # function + layers measured with the compact profile (by the what-if)
) -> list[Suggestion]:
    """The options, largest saving first; a container image last when none of them brings it under."""
    used_bytes, limit_bytes, trace = budget.used_bytes, budget.limit_bytes, inputs.import_trace
    imported_where, configured_remove = imports.imported_where if imports else "", inputs.config.build.remove
    sizes = {e.path: e.unzipped_bytes for group in entries.values() for e in group}
    options: list[Suggestion] = []
    compact: set[str] = set()
    if not inputs.compact_profile:
        compact = compact_removals([e for name, group in entries.items() if name in judged for e in group], trace)
        saves = sum(sizes[path] for path in compact) if compact_bytes is None else used_bytes - compact_bytes
        scope = ("files the import trace never saw and " if trace else "") + ".py shipped beside its .pyc"
        scope = COMPACT_MEASURED if compact_bytes is not None else scope
        action = (
            f"turn on the compact profile: it drops {scope}; the build "
            "proves the imports and the handler's answers on every event again, and the full smoke must still pass"
        )
        options.append(suggest("compact", action, COMPACT_LINES, "build", saves, used_bytes))
    unused = [name for name in never_imported if name in judged and name in entries]
    dropped = {e.path for name in unused for e in entries[name] if ".dist-info/" not in e.path}
    never_globs = remove_globs(e for name in unused for e in entries[name])
    if unused and never_globs:
        paste = remove_line(configured_remove, never_globs)
        action = (
            f"distributions shipped but never imported {imported_where}: "
            + ", ".join(f"{name} ({as_mb(sum(e.unzipped_bytes for e in entries[name]))})" for name in unused)
            + "; remove what they install only if nothing needs them at runtime (events not among the "
            "committed ones, lazy imports when unpickling); their metadata stays, so the pins still agree"
        )
        options.append(suggest("never-imported", action, [paste], "build", sum(sizes[p] for p in dropped), used_bytes))
        if compact and not inputs.compact_profile and compact_bytes is None:
            action = f"the compact profile and removing {', '.join(unused)}, together"
            saves = sum(sizes[path] for path in compact | dropped)
            both = suggest("together", action, [*COMPACT_LINES, paste], "build", saves, used_bytes)
            if (both.saves_bytes or 0) > max(option.saves_bytes or 0 for option in options):
                options.append(both)
    for folder in folders:
        action = (
            f"nothing in python/{folder.name} ({as_mb(folder.unzipped_bytes)}, {folder.files} files) was imported "
            f"{imported_where}: remove it (the build proves every import and the handler on every event again; "
            "the full smoke must still pass)"
        )
        paste = remove_line(configured_remove, [f"{folder.name}/*"])
        options.append(suggest("folder", action, [paste], "build", folder.unzipped_bytes, used_bytes))
    options.sort(key=lambda option: -(option.saves_bytes or 0))
    best = min((option.leaves_bytes for option in options if option.leaves_bytes is not None), default=used_bytes)
    if used_bytes >= limit_bytes and best >= limit_bytes:
        action = (
            f"nothing above brings it under {limit_bytes:,} bytes: ship the function as a container image "
            f"instead (Lambda allows 10 GB, {CONTAINER_IMAGE_LIMIT:,} bytes, uncompressed; this set is "
            f"{as_mb(used_bytes)}, {100 * used_bytes / CONTAINER_IMAGE_LIMIT:.1f}% of it)"
        )
        options.append(suggest("container-image", action, (), "", 0, used_bytes))
    return options


BUILD_FIX = "run `python -m ci build` first (it writes layer.zip, function.zip and reports/build.json)"
LARGEST_FILES = 15
LARGEST_DIRECTORIES = 10
CI_PACKAGE = Path(__file__).resolve().parents[1]  # ci/: the code the baseline and what-if cache keys cover


class BudgetInputs(NamedTuple):
    config: Config
    function: ZipContents
    layer: ZipContents
    limit_bytes: int
    build_report: Mapping[str, Any]
    extra_zips: tuple[ZipContents, ...]
    import_trace: ImportTrace | None
    lock: Mapping[str, str]
    compact_profile: bool  # build.sourceless and build.prune_unimported already on


def gather_inputs(
    config: Config,
    paths: BuildPaths,
    limit_bytes: int | None = None,
    lock_file: Path | None = None,
    function_zip: Path | None = None,
    layer_zip: Path | None = None,
) -> BudgetInputs:
    """`layer_zip`/`function_zip`: the snapshots to read instead of the build tree's files."""
    if limit_bytes is not None and not 0 < limit_bytes <= LAMBDA_UNZIPPED_LIMIT:
        raise ConfigError(
            f"--limit-bytes {limit_bytes!r} is not a positive integer up to Lambda's {LAMBDA_UNZIPPED_LIMIT:,}",
            "give the limit in bytes, e.g. --limit-bytes 262144000 (Lambda's unzipped limit)",
        )
    layer = read_zip(layer_zip or paths.layer_zip, "layer.zip", "layer", BUILD_FIX, shown=paths.layer_zip)
    function = read_zip(function_zip or paths.function_zip, "function.zip", "function", BUILD_FIX, paths.function_zip)
    report = read_json(paths.report("build"), BUILD_FIX, required=False)
    built_from = report.get("lock")
    if isinstance(built_from, dict) and isinstance(built_from.get("sha256"), str):
        lock = {"path": str(built_from.get("path", "")), "sha256": built_from["sha256"]}  # what the layer holds
    else:
        lock_file = lock_file or config.lock.layer_lock
        lock = {"path": config.relative(lock_file), "sha256": sha256_file(lock_file)} if lock_file.is_file() else {}
    # Built compact? The build report knows (`build --compact` leaves pipeline.toml alone); else the configuration.
    compact = config.build.sourceless and config.build.prune_unimported
    if report:
        compact = bool((report.get("bytecode") or {}).get("sourceless")) and "unimported" in (report.get("rules") or {})
    extra_fix = f"fix the path in budget.extra_layer_zips of {config.file} (paths are relative to the repository)"
    extra_zips = tuple(read_zip(p, p.name, "extra layer", extra_fix) for p in config.budget.extra_layer_zips)
    limit_bytes = config.budget.limit_bytes if limit_bytes is None else limit_bytes
    trace = import_trace(paths, layer, report)
    return BudgetInputs(config, function, layer, limit_bytes, report, extra_zips, trace, lock, compact)


def read_json(path: Path, fix: str, required: bool = True, what: str = "") -> dict[str, Any]:
    if not path.is_file():
        if required:
            raise PipelineError(f"{what}{path} not found", fix)
        return {}
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PipelineError(f"{what}{path} is not valid JSON ({exc})", fix) from exc
    if not isinstance(data, dict):
        raise PipelineError(f"{what}{path} does not hold a JSON object", fix)
    return data


def import_trace(paths: BuildPaths, layer: ZipContents, build_report: Mapping[str, Any]) -> ImportTrace | None:
    """The smoke trace of this layer.zip, else the build's trace of the events on it, else a stale smoke trace."""
    layer_sha = sha256_file(layer.path)
    smoke = smoke_trace(paths, layer_sha)
    if smoke is not None and smoke.same_layer:
        return smoke
    trace, built = build_report.get("import_trace"), build_report.get("layer")
    if not isinstance(trace, dict) or not isinstance(built, dict):
        return smoke
    traced = trace.get("paths")
    if trace.get("workload") != "events" or not isinstance(traced, list) or built.get("sha256") != layer_sha:
        return smoke  # only a trace of the handler answering the events with the model stands for the smoke's
    return ImportTrace(display_path(paths.report("build"), REPO_ROOT), True, [str(p) for p in traced], TRACE_BUILD)


def smoke_trace(paths: BuildPaths, layer_sha: str) -> ImportTrace | None:
    report_path = paths.report("smoke")
    report = read_json(report_path, "rerun `python -m ci smoke`", required=False)
    trace = report.get("import_trace")
    if not isinstance(trace, dict):
        return None
    same_layer = report.get("artifacts", {}).get("layer.zip") == layer_sha
    files = [str(path) for path in trace.get("files") or []]
    return ImportTrace(display_path(report_path, REPO_ROOT), same_layer, files, TRACE_SMOKE)


def compute_budget(inputs: BudgetInputs) -> Budget:
    report = inputs.build_report
    known = dict(report.get("distributions") or {})
    owner, versions = attribute(inputs.layer, report.get("top_level") or {}, list(known))
    layer_entries = inputs.layer.entries
    zips = [inputs.function, inputs.layer, *inputs.extra_zips]
    components = [
        *(Component(z.name, z.kind, str(z.path), *totals(z.entries)) for z in zips),
        *(
            Component(":".join(layer.arn.split(":")[-2:]), "extra layer", layer.arn, layer.unzipped_bytes, None, None)
            for layer in inputs.config.budget.extra_layer_arns
        ),
    ]
    by_owner: dict[str, list[Entry]] = defaultdict(list)
    for entry in layer_entries:
        by_owner[owner[entry.path]].append(entry)
    reported = {canonical(name): facts for name, facts in known.items()}
    distributions = _largest_first(
        Group(name, *totals(members), (reported.get(canonical(name)) or {}).get("version") or versions.get(name))
        for name, members in by_owner.items()
    )
    by_category: dict[str, list[Entry]] = {name: [] for name in CATEGORIES}
    for entry in (entry for contents in zips for entry in contents.entries):
        by_category[category(entry.path)].append(entry)
    rules = [
        RuleRemoval(name, int(facts.get("files", 0)), int(facts.get("bytes", 0)), list(facts.get("paths", [])))
        for name, facts in (report.get("rules") or {}).items()
    ]
    files = [
        FileSize(z.name, e.path, e.unzipped_bytes, e.zipped_bytes, _shipped_by(z, e.path, owner), category(e.path))
        for z in zips
        for e in z.entries
    ]
    sizes = {e.path: e.unzipped_bytes for e in layer_entries}
    compiled = [e for e in layer_entries if e.path.endswith(".pyc")]
    beside_bytecode = compact_removals(layer_entries, None)  # the .py shipped beside its .pyc
    compact = compact_removals(layer_entries, inputs.import_trace)  # what the compact profile would drop
    budget = Budget(
        limit_bytes=inputs.limit_bytes,
        warn_fraction=inputs.config.budget.warn_fraction,
        components=components,
        distributions=distributions,
        categories=_largest_first(Group(name, *totals(members)) for name, members in by_category.items()),
        rules=sorted(rules, key=lambda rule: (-rule.bytes, rule.name)),
        largest_files=sorted(files, key=lambda f: (-f.unzipped_bytes, f.component, f.path))[:LARGEST_FILES],
        largest_directories=_by_folder(layer_entries)[:LARGEST_DIRECTORIES],
        bytecode=Bytecode(
            (report.get("bytecode") or {}).get("mode"),
            len(compiled),
            sum(e.unzipped_bytes for e in compiled),
            sum(sizes[path] for path in beside_bytecode),
        ),
        imports=_imports(inputs.import_trace, list(layer_entries), owner, distributions),
        lock=dict(inputs.lock),
        compact_saving_bytes=None if inputs.compact_profile else sum(sizes[path] for path in compact),
    )
    return _with_suggestions(budget, inputs, by_owner)


def _shipped_by(contents: ZipContents, path: str, owner: Mapping[str, str]) -> str:
    if contents.kind == "layer":
        return owner[path]
    return "(function code)" if contents.kind == "function" else contents.name


def totals(entries: Iterable[Entry]) -> tuple[int, int, int]:
    """Unzipped bytes, zipped bytes, files."""
    entries = list(entries)
    return sum(e.unzipped_bytes for e in entries), sum(e.zipped_bytes for e in entries), len(entries)


def _largest_first(groups: Iterable[Group]) -> list[Group]:
    return sorted(groups, key=lambda group: (-group.unzipped_bytes, group.name))


def _folder(path: str) -> str | None:
    """scipy/special of python/scipy/special/...: what a rule could cut (never *.libs, which extensions load)."""
    parts = path.removeprefix(LAYER_PREFIX).split("/")
    if len(parts) < 3 or parts[1] == "__pycache__" or category(path) in (METADATA, VENDORED_LIBRARIES):
        return None
    return "/".join(parts[:2])


def _by_folder(entries: Iterable[Entry]) -> list[Group]:
    members: dict[str, list[Entry]] = defaultdict(list)
    for entry in entries:
        folder = _folder(entry.path)
        if folder is not None:
            members[folder].append(entry)
    return _largest_first(Group(name, *totals(files)) for name, files in members.items())


def _imports(
    trace: ImportTrace | None, entries: list[Entry], owner: Mapping[str, str], distributions: list[Group]
) -> ImportUsage | None:
    if trace is None:
        return None
    traced = traced_paths(trace, entries)
    imported: dict[str, list[int]] = defaultdict(list)  # distribution -> sizes of its traced files
    for entry in entries:
        if entry.path in traced:
            imported[owner[entry.path]].append(entry.unzipped_bytes)
    uses = [
        DistributionUse(g.name, g.unzipped_bytes, sum(imported[g.name]), len(imported[g.name])) for g in distributions
    ]
    touched = {_folder(path) for path in traced}
    unimported = [g for g in _by_folder(entries) if g.name not in touched][:LARGEST_DIRECTORIES] if trace.files else []
    return ImportUsage(trace.report, trace.same_layer, uses, unimported, trace.source)


def _with_suggestions(budget: Budget, inputs: BudgetInputs, by_owner: dict[str, list[Entry]]) -> Budget:
    imports, used, trace = budget.imports, budget.used_bytes, inputs.import_trace
    never = [use.name for use in imports.never_imported] if imports else []
    folders = imports.unimported_directories[:3] if imports else []
    ideas = removal_options(budget, inputs, imports, by_owner, set(by_owner), never, folders)
    if budget.bytecode.mode == "all" and budget.bytecode.bytes:
        saves = None
        if trace and trace.files:  # a module's .pyc counts as traced when the module is
            entries = list(inputs.layer.entries)
            imported = traced_paths(trace, entries)
            saves = sum(e.unzipped_bytes for e in entries if e.path.endswith(".pyc") and e.path not in imported)
        action = (
            f"precompile only the modules the handler imports (bytecode now {as_mb(budget.bytecode.bytes)}); "
            "the build traces the handler to choose them"
        )
        ideas.append(suggest("bytecode", action, ['bytecode = "runtime"'], "build", saves, used))
    arns, zips = inputs.config.budget.extra_layer_arns, inputs.config.budget.extra_layer_zips
    for component in budget.components:
        if component.kind == "extra layer":  # the [budget] line that attaches every extra layer but this one
            action = (
                f"detach the extra layer {component.name} ({as_mb(component.unzipped_bytes)}) or move what the "
                "function needs from it into requirements.in"
            )
            if any(layer.arn == component.source for layer in arns):
                kept = [{"arn": a.arn, "unzipped_bytes": a.unzipped_bytes} for a in arns if a.arn != component.source]
                attach = f"extra_layer_arns = {toml_value(kept)}"
            else:
                kept_zips = [inputs.config.relative(path) for path in zips if str(path) != component.source]
                attach = f"extra_layer_zips = {toml_value(kept_zips)}"
            ideas.append(suggest("extra-layer", action, [attach], "budget", component.unzipped_bytes, used))
    if not imports and budget.largest_directories:
        folders = budget.largest_directories[:3]
        names = ", ".join(f"python/{g.name} ({as_mb(g.unzipped_bytes)})" for g in folders)
        action = (
            f"the largest folders no pruning rule removes are {names}; no import trace says whether the handler "
            "needs them: build with a trained model or run the smoke invocation (`python -m ci smoke`) first"
        )
        paste = [remove_line(inputs.config.build.remove, [f"{g.name}/*" for g in folders])]
        ideas.append(suggest("learn", action, paste, "build", sum(g.unzipped_bytes for g in folders), used))
    ideas.sort(key=lambda idea: (idea.name == "container-image", -(idea.saves_bytes or 0)))
    return dataclasses.replace(budget, suggestions=ideas)


def baseline_from_ref(
    config: Config, paths: BuildPaths, ref: str, current: Budget, rebuild: bool, function_zip: Path
) -> tuple[dict[str, Any], str]:
    """The lock at `ref` built with this checkout's rules, model, function and limit; the same lock is not rebuilt."""
    lock_path = config.relative(config.lock.layer_lock)
    sha, lock = lock_at_ref(config.root, ref, lock_path)
    source = f"{lock_path} at {ref} ({sha[:12]})"
    if not rebuild and current.lock.get("sha256") == hashlib.sha256(lock).hexdigest():
        return budget_to_dict(current), source + ", identical to this build's lock"

    base = BuildPaths(build=paths.build / f"baseline-{sha[:12]}", cache=paths.cache)
    model = paths.model.read_bytes() if paths.model.is_file() else b""
    # The build also runs this checkout's code: its rules, and the handler traced on the events.
    handler = config.root / config.function.handler.split(".", 1)[0]
    code = sources_digest(CI_PACKAGE, handler, config.smoke.events).encode()
    key = hashlib.sha256(b"\0".join([lock, config.file.read_bytes(), model, code])).hexdigest()
    key_file = base.build / "baseline.key"
    lock_file = base.build / "requirements-layer.txt"
    cached = key_file.is_file() and key_file.read_text() == key and base.layer_zip.is_file()
    if rebuild or not cached:  # `python -m ci build` of the ref's lock in its own tree, with this configuration
        key_file.unlink(missing_ok=True)
        base.build.mkdir(parents=True, exist_ok=True)
        if paths.model_dir.is_dir():  # the runtime bytecode is chosen by tracing the handler with the model
            shutil.copytree(paths.model_dir, base.model_dir, dirs_exist_ok=True)
        lock_file.write_bytes(lock)
        settings = base.build / "pipeline.toml"
        settings.write_text(_with_layer_lock(config.file, lock_file))
        command = [sys.executable, "-m", "ci", "--build-dir", str(base.build), "--cache-dir", str(paths.cache)]
        command += ["--config", str(settings), "build"]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
            raise PipelineError(
                f"building the baseline layer in {base.build} failed (exit {result.returncode}):\n{tail}",
                "fix the build of that lock, or compare with --baseline PATH instead",
            )
        key_file.write_text(key)
    # Only the layer comes from the ref: the function code is this checkout's on both sides.
    inputs = gather_inputs(config, base, current.limit_bytes, lock_file, function_zip)
    return budget_to_dict(compute_budget(inputs)), source + f", built in {display_path(base.build, config.root)}"


def load_baseline(path: Path) -> dict[str, Any]:
    """A budget.json written by this pipeline's report format; anything else is refused by name."""
    fix = "pass a budget.json written by `python -m ci budget` of this pipeline version, or use --baseline-ref REF"
    data = read_json(path, fix, what="baseline ")
    if data.get("format") != REPORT_FORMAT:
        raise PipelineError(
            f"baseline {path} has report format {data.get('format')!r}; this pipeline reads format {REPORT_FORMAT}",
            "rebuild the baseline with this version (e.g. --baseline-ref main) instead of an old report",
        )
    if data.get("check") != "budget" or not isinstance(data.get("used_bytes"), int):
        raise PipelineError(f"baseline {path} is not a budget report (check = {data.get('check')!r})", fix)
    rows = data.get("distributions")
    if not isinstance(rows, list) or not all(
        isinstance(row, dict) and isinstance(row.get("name"), str) and isinstance(row.get("unzipped_bytes"), int)
        for row in rows
    ):
        raise PipelineError(f"baseline {path} has no per-distribution figures (name, unzipped_bytes)", fix)
    return data


def compare(budget: Budget, baseline: dict[str, Any], label: str, source: str) -> Comparison:
    """Per distribution: added, removed, changed (bytes or version) or unchanged; largest change first."""
    before = {canonical(row["name"]): row for row in baseline["distributions"]}
    after = {canonical(group.name): group for group in budget.distributions}
    rows = []
    for key in before.keys() | after.keys():
        old, new = before.get(key), after.get(key)
        old_bytes, old_version = (int(old["unzipped_bytes"]), old.get("version")) if old else (0, None)
        new_bytes, new_version = (new.unzipped_bytes, new.version) if new else (0, None)
        status = "added" if old is None else "removed" if new is None else "unchanged"
        if status == "unchanged" and (old_bytes, old_version) != (new_bytes, new_version):
            status = "changed"
        name = new.name if new else str(before[key]["name"])
        rows.append(DistributionDelta(name, status, old_bytes, new_bytes, old_version, new_version))
    rows.sort(key=lambda row: (-abs(row.delta_bytes), row.name))
    return Comparison(label, source, int(baseline["used_bytes"]), budget.used_bytes, rows)


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, check=False)


def lock_at_ref(root: Path, ref: str, lock_path: str) -> tuple[str, bytes]:
    resolved = _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if resolved.returncode != 0:
        raise PipelineError(
            f"git ref {ref!r} does not exist in {root}",
            f"name an existing branch, tag or commit; in CI fetch the base branch first (git fetch origin {ref})",
        )
    sha = resolved.stdout.decode().strip()
    shown = _git(root, "show", f"{sha}:{lock_path}")
    if shown.returncode != 0:
        raise PipelineError(
            f"{lock_path} does not exist at {ref} ({sha[:12]}): there is no layer to compare with",
            "compare with a ref that has the lock, or pass --baseline PATH to a budget.json",
        )
    return sha, shown.stdout


_LAYER_LOCK = re.compile(r"^(?P<key>\s*layer_lock\s*=\s*)(?P<value>\"[^\"\n]*\"|'[^'\n]*')", re.MULTILINE)


def _with_layer_lock(config_file: Path, lock_file: Path) -> str:
    text = config_file.read_text()
    if len(_LAYER_LOCK.findall(text)) != 1:
        raise PipelineError(
            f"{config_file} must set lock.layer_lock exactly once for a baseline build",
            'write layer_lock = "requirements-layer.txt" under [lock]',
        )
    return _LAYER_LOCK.sub(lambda m: m["key"] + json.dumps(str(lock_file)), text)
