"""From the zips, the build's report and the import trace to one `Budget`.

Counting follows Lambda: the uncompressed size of every entry of the function zip and of every
layer attached to the function (directories count 0), against one limit.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ci.budget import attribution
from ci.budget.attribution import Attributor, category
from ci.budget.model import (
    Budget,
    Bytecode,
    Component,
    DistributionUse,
    FileSize,
    Group,
    ImportUsage,
    RuleRemoval,
)
from ci.budget.options import removal_options, remove_line, suggest
from ci.budget.traced import ImportTrace, compact_removals, module_key, traced_paths
from ci.budget.zips import Entry, ZipContents
from ci.config_schema import toml_value
from ci.config_sections import ExtraLayerArn
from ci.site.owners import canonical
from ci.units import as_mb

LARGEST_FILES = 15
LARGEST_DIRECTORIES = 10
FUNCTION_CODE = "(function code)"


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


def compute_budget(inputs: BudgetInputs) -> Budget:
    report = inputs.build_report
    known = dict(report.get("distributions") or {})
    attributor = Attributor(inputs.layer, top_level=report.get("top_level") or {}, names=list(known))
    owner = {entry.path: attributor.distribution(entry.path) for entry in inputs.layer.entries}

    zips = [inputs.function, inputs.layer, *inputs.extra_zips]
    components = [_measured(contents) for contents in zips] + [
        Component(":".join(layer.arn.split(":")[-2:]), "extra layer", layer.arn, layer.unzipped_bytes, None, None)
        for layer in inputs.extra_arns
    ]
    distributions = _distributions(inputs.layer.entries, owner, known, attributor.versions)
    budget = Budget(
        limit_bytes=inputs.limit_bytes,
        warn_fraction=inputs.warn_fraction,
        components=components,
        distributions=distributions,
        categories=_categories(entry for contents in zips for entry in contents.entries),
        rules=_rules(report.get("rules") or {}),
        largest_files=_largest_files(zips, owner),
        largest_directories=_largest_directories(inputs.layer.entries),
        bytecode=_bytecode(inputs.layer.entries, (report.get("bytecode") or {}).get("mode")),
        imports=_imports(inputs.import_trace, inputs.layer.entries, owner, distributions),
        lock=dict(inputs.lock),
        compact_saving_bytes=None
        if inputs.compact_profile
        else _compact_saving(inputs.layer.entries, inputs.import_trace),
    )
    return _with_suggestions(budget, inputs, owner)


def _measured(contents: ZipContents) -> Component:
    return Component(
        name=contents.name,
        kind=contents.kind,
        source=str(contents.path),
        unzipped_bytes=contents.unzipped_bytes,
        zipped_bytes=contents.zipped_bytes,
        files=len(contents.entries),
    )


def _group(name: str, entries: Iterable[Entry], version: str | None = None) -> Group:
    entries = list(entries)
    return Group(
        name=name,
        unzipped_bytes=sum(e.unzipped_bytes for e in entries),
        zipped_bytes=sum(e.zipped_bytes for e in entries),
        files=len(entries),
        version=version,
    )


def _largest_first(groups: Iterable[Group]) -> list[Group]:
    return sorted(groups, key=lambda group: (-group.unzipped_bytes, group.name))


def _distributions(
    entries: Iterable[Entry], owner: Mapping[str, str], known: Mapping[str, Any], versions: Mapping[str, str]
) -> list[Group]:
    by_name: dict[str, list[Entry]] = defaultdict(list)
    for entry in entries:
        by_name[owner[entry.path]].append(entry)
    reported = {canonical(name): facts for name, facts in known.items()}
    groups = []
    for name, members in by_name.items():
        version = (reported.get(canonical(name)) or {}).get("version") or versions.get(name)
        groups.append(_group(name, members, version))
    return _largest_first(groups)


def _categories(entries: Iterable[Entry]) -> list[Group]:
    by_category: dict[str, list[Entry]] = {name: [] for name in attribution.CATEGORIES}
    for entry in entries:
        by_category[category(entry.path)].append(entry)
    return _largest_first(_group(name, members) for name, members in by_category.items())


def _rules(rules: Mapping[str, Any]) -> list[RuleRemoval]:
    removals = [
        RuleRemoval(
            name=name,
            files=int(facts.get("files", 0)),
            bytes=int(facts.get("bytes", 0)),
            paths=list(facts.get("paths", [])),
        )
        for name, facts in rules.items()
    ]
    return sorted(removals, key=lambda rule: (-rule.bytes, rule.name))


def _largest_files(zips: list[ZipContents], owner: Mapping[str, str]) -> list[FileSize]:
    files = [
        FileSize(
            component=contents.name,
            path=entry.path,
            unzipped_bytes=entry.unzipped_bytes,
            zipped_bytes=entry.zipped_bytes,
            distribution=_owner_of(contents, entry, owner),
            category=category(entry.path),
        )
        for contents in zips
        for entry in contents.entries
    ]
    return sorted(files, key=lambda f: (-f.unzipped_bytes, f.component, f.path))[:LARGEST_FILES]


def _owner_of(contents: ZipContents, entry: Entry, owner: Mapping[str, str]) -> str:
    if contents.kind == "layer":
        return owner[entry.path]
    return FUNCTION_CODE if contents.kind == "function" else contents.name


def _folder(path: str) -> str | None:
    """scipy/special for python/scipy/special/...: the unit a new pruning rule could cut.

    Vendored-library folders (*.libs) and metadata are left out: extension modules load the
    former and installers need the latter. Files directly in a package folder belong to none.
    """
    parts = path.removeprefix(attribution.LAYER_PREFIX).split("/")
    if len(parts) < 3 or parts[1] == "__pycache__":
        return None
    if category(path) in (attribution.METADATA, attribution.VENDORED_LIBRARIES):
        return None
    return "/".join(parts[:2])


def _by_folder(entries: Iterable[Entry]) -> list[Group]:
    members: dict[str, list[Entry]] = defaultdict(list)
    for entry in entries:
        folder = _folder(entry.path)
        if folder is not None:
            members[folder].append(entry)
    return _largest_first(_group(name, files) for name, files in members.items())


def _largest_directories(entries: Iterable[Entry]) -> list[Group]:
    return _by_folder(entries)[:LARGEST_DIRECTORIES]


def _bytecode(entries: Iterable[Entry], mode: str | None) -> Bytecode:
    entries = list(entries)
    compiled = [e for e in entries if e.path.endswith(".pyc")]
    compiled_keys = {module_key(e.path) for e in compiled}
    sources = [e for e in entries if e.path.endswith(".py") and module_key(e.path) in compiled_keys]
    return Bytecode(
        mode=mode,
        files=len(compiled),
        bytes=sum(e.unzipped_bytes for e in compiled),
        source_with_bytecode_bytes=sum(e.unzipped_bytes for e in sources),
    )


def _imports(
    trace: ImportTrace | None, entries: Iterable[Entry], owner: Mapping[str, str], distributions: list[Group]
) -> ImportUsage | None:
    if trace is None:
        return None
    entries = list(entries)
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
    unimported = (
        [group for group in _by_folder(entries) if group.name not in touched][:LARGEST_DIRECTORIES]
        if trace.files
        else []
    )
    return ImportUsage(trace.report, trace.same_layer, uses, unimported, trace.source)


def _compact_saving(entries: Iterable[Entry], trace: ImportTrace | None) -> int:
    """Bytes the compact profile would drop, each file once (see compact_removals)."""
    entries = list(entries)
    removable = compact_removals(entries, trace)
    return sum(e.unzipped_bytes for e in entries if e.path in removable)


def _with_suggestions(budget: Budget, inputs: BudgetInputs, owner: Mapping[str, str]) -> Budget:
    """What could come out, largest saving first, each with its line to paste and what would remain."""
    imports = budget.imports
    used = budget.used_bytes
    by_owner: dict[str, list[Entry]] = defaultdict(list)
    for entry in inputs.layer.entries:
        by_owner[owner[entry.path]].append(entry)
    ideas = removal_options(
        used,
        budget.limit_bytes,
        by_owner,
        set(by_owner),
        inputs.import_trace,
        inputs.compact_profile,
        [use.name for use in imports.never_imported] if imports else [],
        imports.imported_where if imports else "",
        inputs.configured_remove,
        folders=imports.unimported_directories[:3] if imports else [],
    )
    if budget.bytecode.mode == "all" and budget.bytecode.bytes:
        saves = None
        if inputs.import_trace and inputs.import_trace.files:
            entries = list(inputs.layer.entries)
            imported = {module_key(path) for path in traced_paths(inputs.import_trace, entries)} - {None}
            saves = sum(
                e.unzipped_bytes for e in entries if e.path.endswith(".pyc") and module_key(e.path) not in imported
            )
        ideas.append(
            suggest(
                "bytecode",
                "precompile only the modules the handler imports (bytecode now "
                f"{as_mb(budget.bytecode.bytes)}); the build traces the handler to choose them",
                ['bytecode = "runtime"'],
                "build",
                saves,
                used,
            )
        )
    for component in budget.components:
        if component.kind == "extra layer":
            ideas.append(
                suggest(
                    "extra-layer",
                    f"detach the extra layer {component.name} ({as_mb(component.unzipped_bytes)}) or move what the "
                    "function needs from it into requirements.in",
                    [_without_extra_layer(inputs, component.source)],
                    "budget",
                    component.unzipped_bytes,
                    used,
                )
            )
    if not imports and budget.largest_directories:
        folders = budget.largest_directories[:3]
        names = ", ".join(f"python/{g.name} ({as_mb(g.unzipped_bytes)})" for g in folders)
        ideas.append(
            suggest(
                "learn",
                f"the largest folders no pruning rule removes are {names}; no import trace says whether the handler "
                "needs them: build with a trained model or run the smoke invocation (`python -m ci smoke`) first",
                [remove_line(inputs.configured_remove, [f"{g.name}/*" for g in folders])],
                "build",
                sum(g.unzipped_bytes for g in folders),
                used,
            )
        )
    ideas.sort(key=lambda idea: (idea.name == "container-image", -(idea.saves_bytes or 0)))
    return dataclasses.replace(budget, suggestions=ideas)


def _without_extra_layer(inputs: BudgetInputs, source: str) -> str:
    """The [budget] line that attaches every extra layer but the one at `source`."""
    arns = [layer for layer in inputs.extra_arns if layer.arn == source]
    if arns:
        kept = [{"arn": a.arn, "unzipped_bytes": a.unzipped_bytes} for a in inputs.extra_arns if a.arn != source]
        return f"extra_layer_arns = {toml_value(kept)}"
    names = [
        name
        for name, contents in zip(inputs.extra_zip_names, inputs.extra_zips, strict=False)
        if str(contents.path) != source
    ]
    return f"extra_layer_zips = {toml_value(names)}"
