"""From the zips, the build's report and the import trace to one `Budget`, and its delta against a baseline.
Counting follows Lambda: the uncompressed size of every entry of the function zip and of every layer."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci.budget.contents import (
    CATEGORIES,
    LAYER_PREFIX,
    METADATA,
    VENDORED_LIBRARIES,
    Entry,
    ImportTrace,
    ZipContents,
    attribute,
    category,
    compact_removals,
    module_key,
    read_zip,
    traced_paths,
)
from ci.budget.model import (
    TRACE_BUILD,
    TRACE_SMOKE,
    Budget,
    Bytecode,
    Comparison,
    Component,
    DistributionUse,
    FileSize,
    Group,
    ImportUsage,
    RuleRemoval,
    delta_rows,
)
from ci.budget.options import removal_options, remove_line, suggest
from ci.budget.render import budget_to_dict
from ci.cache_seal import sources_digest
from ci.config import Config
from ci.config_sections import LAMBDA_UNZIPPED_LIMIT, ExtraLayerArn
from ci.errors import ConfigError, PipelineError, toml_value
from ci.lock.files import display_path
from ci.paths import REPO_ROOT, BuildPaths
from ci.reports import REPORT_FORMAT, sha256_file
from ci.site.owners import canonical
from ci.units import as_mb

BUILD_FIX = "run `python -m ci build` first (it writes layer.zip, function.zip and reports/build.json)"
LARGEST_FILES = 15
LARGEST_DIRECTORIES = 10
FUNCTION_CODE = "(function code)"
BASELINE_KEY = "baseline.key"
CI_PACKAGE = Path(__file__).resolve().parents[1]  # the code that builds the baseline layer


@dataclass(frozen=True)
class BudgetInputs:
    function: ZipContents
    layer: ZipContents
    limit_bytes: int
    warn_fraction: float
    build_report: Mapping[str, Any] = field(default_factory=dict)
    extra_zips: tuple[ZipContents, ...] = ()
    extra_arns: tuple[ExtraLayerArn, ...] = ()
    import_trace: ImportTrace | None = None
    lock: Mapping[str, str] = field(default_factory=dict)
    compact_profile: bool = False  # build.sourceless and build.prune_unimported already on
    configured_remove: tuple[str, ...] = ()  # [build] remove as configured: advice extends it
    extra_zip_names: tuple[str, ...] = ()  # [budget] extra_layer_zips as written in pipeline.toml


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
    function = read_zip(function_zip or paths.function_zip, "function.zip", "function", BUILD_FIX, paths.function_zip)
    report = read_json(paths.report("build"), BUILD_FIX, required=False) or {}
    built_from = report.get("lock")
    if isinstance(built_from, dict) and isinstance(built_from.get("sha256"), str):
        lock = {"path": str(built_from.get("path", "")), "sha256": built_from["sha256"]}  # what the layer holds
    else:
        lock_file = lock_file or config.lock.layer_lock
        shown = str(lock_file.relative_to(config.root)) if lock_file.is_relative_to(config.root) else str(lock_file)
        lock = {"path": shown, "sha256": sha256_file(lock_file)} if lock_file.is_file() else {}
    if limit_bytes is not None and (
        isinstance(limit_bytes, bool)
        or not isinstance(limit_bytes, int)
        or not 0 < limit_bytes <= LAMBDA_UNZIPPED_LIMIT
    ):
        raise ConfigError(
            f"--limit-bytes {limit_bytes!r} is not a positive integer up to Lambda's {LAMBDA_UNZIPPED_LIMIT:,}",
            "give the limit in bytes, e.g. --limit-bytes 262144000 (Lambda's unzipped limit)",
        )
    # Was this layer built with the compact profile? The build report knows (`build --compact` does not
    # change pipeline.toml); without one, the configuration is the best guess.
    compact = config.build.sourceless and config.build.prune_unimported
    if report:
        compact = bool((report.get("bytecode") or {}).get("sourceless")) and "unimported" in (report.get("rules") or {})
    extra_fix = f"fix the path in budget.extra_layer_zips of {config.file} (paths are relative to the repository)"
    return BudgetInputs(
        function=function,
        layer=layer,
        limit_bytes=config.budget.limit_bytes if limit_bytes is None else limit_bytes,
        warn_fraction=config.budget.warn_fraction,
        build_report=report,
        extra_zips=tuple(read_zip(p, p.name, "extra layer", extra_fix) for p in config.budget.extra_layer_zips),
        extra_arns=config.budget.extra_layer_arns,  # their unzipped size is declared: not measurable here
        import_trace=import_trace(paths, layer, report),
        lock=lock,
        compact_profile=compact,
        configured_remove=config.build.remove,
        extra_zip_names=tuple(config.relative(path) for path in config.budget.extra_layer_zips),
    )


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


def import_trace(paths: BuildPaths, layer: ZipContents, build_report: Mapping[str, Any]) -> ImportTrace | None:
    """The smoke report's trace if taken on this layer.zip; else the build's, if it traced the handler
    answering the committed events and built exactly this layer.zip; else a stale smoke trace (flagged)."""
    layer_sha = sha256_file(layer.path)
    smoke = smoke_trace(paths, layer_sha)
    if smoke is not None and smoke.same_layer:
        return smoke
    trace, built = build_report.get("import_trace"), build_report.get("layer")
    if not isinstance(trace, dict) or not isinstance(built, dict):
        return smoke
    traced, distributions = trace.get("paths"), trace.get("distributions")
    if trace.get("workload") != "events" or not isinstance(traced, list) or built.get("sha256") != layer_sha:
        return smoke  # only a trace of the handler answering the events with the model stands for the smoke's
    return ImportTrace(
        report=display_path(paths.report("build"), REPO_ROOT),
        same_layer=True,
        files=[str(path) for path in traced],
        distributions={str(k): dict(v) for k, v in distributions.items()} if isinstance(distributions, dict) else {},
        source=TRACE_BUILD,
    )


def smoke_trace(paths: BuildPaths, layer_sha: str) -> ImportTrace | None:
    report_path = paths.report("smoke")
    report = read_json(report_path, "rerun `python -m ci smoke`", required=False) or {}
    trace = report.get("import_trace")
    if not isinstance(trace, dict):
        return None
    return ImportTrace(
        report=display_path(report_path, REPO_ROOT),
        same_layer=report.get("artifacts", {}).get("layer.zip") == layer_sha,
        files=[str(path) for path in trace.get("files") or []],
        distributions={str(k): dict(v) for k, v in (trace.get("distributions") or {}).items()},
        source=TRACE_SMOKE,
    )


def compute_budget(inputs: BudgetInputs) -> Budget:
    report = inputs.build_report
    known = dict(report.get("distributions") or {})
    owner, versions = attribute(inputs.layer, report.get("top_level") or {}, list(known))
    layer_entries = inputs.layer.entries
    zips = [inputs.function, inputs.layer, *inputs.extra_zips]
    components = [
        *(Component(z.name, z.kind, str(z.path), z.unzipped_bytes, z.zipped_bytes, len(z.entries)) for z in zips),
        *(
            Component(":".join(layer.arn.split(":")[-2:]), "extra layer", layer.arn, layer.unzipped_bytes, None, None)
            for layer in inputs.extra_arns
        ),
    ]
    by_owner: dict[str, list[Entry]] = defaultdict(list)
    for entry in layer_entries:
        by_owner[owner[entry.path]].append(entry)
    reported = {canonical(name): facts for name, facts in known.items()}
    distributions = _largest_first(
        _group(name, members, (reported.get(canonical(name)) or {}).get("version") or versions.get(name))
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
    compiled = [e for e in layer_entries if e.path.endswith(".pyc")]
    compiled_keys = {module_key(e.path) for e in compiled}
    beside_bytecode = [e for e in layer_entries if e.path.endswith(".py") and module_key(e.path) in compiled_keys]
    removable = compact_removals(layer_entries, inputs.import_trace)  # what the compact profile would drop
    compact = [e for e in layer_entries if e.path in removable]
    budget = Budget(
        limit_bytes=inputs.limit_bytes,
        warn_fraction=inputs.warn_fraction,
        components=components,
        distributions=distributions,
        categories=_largest_first(_group(name, members) for name, members in by_category.items()),
        rules=sorted(rules, key=lambda rule: (-rule.bytes, rule.name)),
        largest_files=sorted(files, key=lambda f: (-f.unzipped_bytes, f.component, f.path))[:LARGEST_FILES],
        largest_directories=_by_folder(layer_entries)[:LARGEST_DIRECTORIES],
        bytecode=Bytecode(
            (report.get("bytecode") or {}).get("mode"),
            len(compiled),
            sum(e.unzipped_bytes for e in compiled),
            sum(e.unzipped_bytes for e in beside_bytecode),
        ),
        imports=_imports(inputs.import_trace, list(layer_entries), owner, distributions),
        lock=dict(inputs.lock),
        compact_saving_bytes=None if inputs.compact_profile else sum(e.unzipped_bytes for e in compact),
    )
    return _with_suggestions(budget, inputs, by_owner)


def _shipped_by(contents: ZipContents, path: str, owner: Mapping[str, str]) -> str:
    if contents.kind == "layer":
        return owner[path]
    return FUNCTION_CODE if contents.kind == "function" else contents.name


def _group(name: str, entries: Iterable[Entry], version: str | None = None) -> Group:
    entries = list(entries)
    unzipped, zipped = sum(e.unzipped_bytes for e in entries), sum(e.zipped_bytes for e in entries)
    return Group(name, unzipped, zipped, len(entries), version)


def _largest_first(groups: Iterable[Group]) -> list[Group]:
    return sorted(groups, key=lambda group: (-group.unzipped_bytes, group.name))


def _folder(path: str) -> str | None:
    """scipy/special for python/scipy/special/...: the unit a new pruning rule could cut. Not vendored-library
    folders (*.libs: extension modules load them), metadata (installers need it) or a package's own files."""
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
    return _largest_first(_group(name, files) for name, files in members.items())


def _imports(
    trace: ImportTrace | None, entries: list[Entry], owner: Mapping[str, str], distributions: list[Group]
) -> ImportUsage | None:
    if trace is None:
        return None
    sizes = {entry.path: entry.unzipped_bytes for entry in entries}
    files: dict[str, int] = defaultdict(int)
    nbytes: dict[str, int] = defaultdict(int)
    touched: set[str] = set()
    for path in traced_paths(trace, entries):
        files[owner[path]] += 1
        nbytes[owner[path]] += sizes[path]
        touched.add(_folder(path) or "")
    if not trace.files:  # a trace that only summarises per distribution
        reported = {canonical(name): facts for name, facts in trace.distributions.items()}
        for group in distributions:
            facts = reported.get(canonical(group.name)) or {}
            files[group.name] = int(facts.get("imported_files", 0))
            nbytes[group.name] = int(facts.get("imported_bytes", 0))
    uses = [
        DistributionUse(group.name, group.unzipped_bytes, nbytes.get(group.name, 0), files.get(group.name, 0))
        for group in distributions
    ]
    unimported = [g for g in _by_folder(entries) if g.name not in touched][:LARGEST_DIRECTORIES] if trace.files else []
    return ImportUsage(trace.report, trace.same_layer, uses, unimported, trace.source)


def _with_suggestions(budget: Budget, inputs: BudgetInputs, by_owner: dict[str, list[Entry]]) -> Budget:
    """What could come out, largest saving first, each with its line to paste and what would remain."""
    imports, used, trace = budget.imports, budget.used_bytes, inputs.import_trace
    ideas = removal_options(
        used,
        budget.limit_bytes,
        by_owner,
        set(by_owner),
        trace,
        inputs.compact_profile,
        [use.name for use in imports.never_imported] if imports else [],
        imports.imported_where if imports else "",
        inputs.configured_remove,
        folders=imports.unimported_directories[:3] if imports else [],
    )
    if budget.bytecode.mode == "all" and budget.bytecode.bytes:
        saves = None
        if trace and trace.files:
            entries = list(inputs.layer.entries)
            imported = {module_key(path) for path in traced_paths(trace, entries)} - {None}
            saves = sum(
                e.unzipped_bytes for e in entries if e.path.endswith(".pyc") and module_key(e.path) not in imported
            )
        action = (
            f"precompile only the modules the handler imports (bytecode now {as_mb(budget.bytecode.bytes)}); "
            "the build traces the handler to choose them"
        )
        ideas.append(suggest("bytecode", action, ['bytecode = "runtime"'], "build", saves, used))
    for component in budget.components:
        if component.kind == "extra layer":
            action = (
                f"detach the extra layer {component.name} ({as_mb(component.unzipped_bytes)}) or move what the "
                "function needs from it into requirements.in"
            )
            paste = [_without_extra_layer(inputs, component.source)]
            ideas.append(suggest("extra-layer", action, paste, "budget", component.unzipped_bytes, used))
    if not imports and budget.largest_directories:
        folders = budget.largest_directories[:3]
        names = ", ".join(f"python/{g.name} ({as_mb(g.unzipped_bytes)})" for g in folders)
        action = (
            f"the largest folders no pruning rule removes are {names}; no import trace says whether the handler "
            "needs them: build with a trained model or run the smoke invocation (`python -m ci smoke`) first"
        )
        paste = [remove_line(inputs.configured_remove, [f"{g.name}/*" for g in folders])]
        ideas.append(suggest("learn", action, paste, "build", sum(g.unzipped_bytes for g in folders), used))
    ideas.sort(key=lambda idea: (idea.name == "container-image", -(idea.saves_bytes or 0)))
    return dataclasses.replace(budget, suggestions=ideas)


def _without_extra_layer(inputs: BudgetInputs, source: str) -> str:
    """The [budget] line that attaches every extra layer but the one at `source`."""
    if any(layer.arn == source for layer in inputs.extra_arns):
        kept = [{"arn": a.arn, "unzipped_bytes": a.unzipped_bytes} for a in inputs.extra_arns if a.arn != source]
        return f"extra_layer_arns = {toml_value(kept)}"
    names = zip(inputs.extra_zip_names, inputs.extra_zips, strict=False)
    return f"extra_layer_zips = {toml_value([name for name, contents in names if str(contents.path) != source])}"


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
    elif baseline_ref is not None:
        figures, source = baseline_from_ref(
            config, paths, baseline_ref, budget, limit_bytes, config_file, rebuild_baseline, function_zip
        )
        comparison = compare(budget, figures, baseline_label or baseline_ref.removeprefix("origin/"), source)
    else:
        return budget
    return dataclasses.replace(budget, comparison=comparison)


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
    The build is deterministic: an identical lock gives this build's figures without building twice."""
    lock_path = config.relative(config.lock.layer_lock)
    sha, lock = lock_at_ref(config.root, ref, lock_path)
    source = f"{lock_path} at {ref} ({sha[:12]})"
    if not rebuild and current.lock.get("sha256") == hashlib.sha256(lock).hexdigest():
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
    lock_file = base.build / "requirements-layer.txt"
    inputs = gather_inputs(config, base, limit_bytes, lock_file, function_zip or paths.function_zip)
    return budget_to_dict(compute_budget(inputs)), source + f", built in {display_path(base.build, config.root)}"


def load_baseline(path: Path) -> dict[str, Any]:
    """A budget.json written by this pipeline's report format; anything else is refused by name."""
    fix = "pass a budget.json written by `python -m ci budget` of this pipeline version, or use --baseline-ref REF"
    data = read_json(path, fix, what="baseline ")
    assert data is not None  # required: a missing file raised
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
    sides = []
    for key in before.keys() | after.keys():
        old, new = before.get(key), after.get(key)
        name = new.name if new else str(before[key]["name"])
        sides.append(
            (
                name,
                (int(old["unzipped_bytes"]), old.get("version")) if old else None,
                (new.unzipped_bytes, new.version) if new else None,
            )
        )
    return Comparison(label, source, int(baseline["used_bytes"]), budget.used_bytes, delta_rows(sides))


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, check=False)


def lock_at_ref(root: Path, ref: str, lock_path: str) -> tuple[str, bytes]:
    """(commit sha, lock bytes) of `lock_path` at `ref`; a ref or file that is not there is an error."""
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


def build_layer_at(lock: bytes, build_dir: Path, cache_dir: Path, config_file: Path, model_dir: Path) -> None:
    """`python -m ci build` of `lock` into its own build tree, sharing the download cache, with a copy of this
    checkout's configuration whose layer_lock names the ref's lock, and this build's model (the runtime
    bytecode is chosen by tracing the handler on it)."""
    build_dir.mkdir(parents=True, exist_ok=True)
    if model_dir.is_dir():
        shutil.copytree(model_dir, build_dir / "model", dirs_exist_ok=True)
    lock_file = build_dir / "requirements-layer.txt"
    lock_file.write_bytes(lock)
    settings = build_dir / "pipeline.toml"
    settings.write_text(_with_layer_lock(config_file, lock_file))
    command = [sys.executable, "-m", "ci", "--build-dir", str(build_dir), "--cache-dir", str(cache_dir)]
    result = subprocess.run([*command, "--config", str(settings), "build"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise PipelineError(
            f"building the baseline layer in {build_dir} failed (exit {result.returncode}):\n{tail}",
            "fix the build of that lock, or compare with --baseline PATH instead",
        )


_LAYER_LOCK = re.compile(r"^(?P<key>\s*layer_lock\s*=\s*)(?P<value>\"[^\"\n]*\"|'[^'\n]*')", re.MULTILINE)


def _with_layer_lock(config_file: Path, lock_file: Path) -> str:
    text = config_file.read_text()
    if len(_LAYER_LOCK.findall(text)) != 1:
        raise PipelineError(
            f"{config_file} must set lock.layer_lock exactly once for a baseline build",
            'write layer_lock = "requirements-layer.txt" under [lock]',
        )
    return _LAYER_LOCK.sub(lambda m: m["key"] + json.dumps(str(lock_file)), text)
