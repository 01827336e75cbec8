"""Why an import fails in the build: a pruning rule removed what it needs, the locks lack a package,
the runtime's own copy of a package does not serve, or the installed package fails as it is.

Each cause has its own fix, and only the first is about `build.keep` or `build.prune`: a build that
says a rule removed something when none did sends its reader to the wrong file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ci.layer.modules import paths_of_module, top_level_modules
from ci.runtime_view import RuntimeView
from ci.site import rules

PRUNED, UNLOCKED, RUNTIME, INSTALLED = "pruned", "unlocked", "runtime", "installed"
RELOCK = "`python -m ci lock`"


@dataclass(frozen=True)
class Cause:
    kind: str  # PRUNED | UNLOCKED | RUNTIME | INSTALLED
    detail: str  # one line: what this failure is
    fix: str
    culprits: tuple[tuple[str, str], ...] = ()  # (path, rule) for PRUNED


@dataclass(frozen=True)
class Context:
    """What a diagnosis reads: the layer's tree, what the rules changed in it and what the runtime provides."""

    site: Path
    changes: Mapping[str, str]  # path under python/ -> rule that removed/changed it
    view: RuntimeView | None
    requirements_in: str  # as the reader knows it: "requirements.in"


def cause_of(module: str, error: str, file: str, context: Context) -> Cause:
    """The cause of `module` failing with `error` (an exception line or a traceback); `file` is its own."""
    culprits = attribute(module, error, file, context.changes)
    if culprits:
        blame = "; ".join(f"{rules.describe(rule)} removed/changed {path}" for path, rule in culprits[:3])
        more = f" (+{len(culprits) - 3} more)" if len(culprits) > 3 else ""
        return Cause(
            PRUNED,
            blame + more,
            f'keep the named paths with build.keep = ["<path glob>"] in pipeline.toml, or '
            f"{rules.undo(rule for _path, rule in culprits)}",
            tuple(culprits),
        )
    view = context.view
    missing = missing_module(error)
    top = missing.split(".")[0] if missing else None
    in_layer = top is not None and top in top_level_modules(context.site)
    owner = view.owner(top) if view is not None and top and not in_layer else None
    if view is not None and owner is None and str(view.packages) in error:  # loaded from the runtime's copy
        after = error.split(str(view.packages), 1)[1].lstrip("/")
        owner = view.owner(after.split("/", 1)[0].split(".")[0])
    if view is not None and owner is not None:
        dist, version = owner
        return Cause(
            RUNTIME,
            f"no rule removed anything: it needs {dist}, which the {view.policy.name} runtime provides "
            f"({dist}=={version} in /var/runtime) and the layer leaves out, and that copy does not serve it",
            f'bundle it in the layer: [lock] bundle_runtime_packages = ["{dist}"] in pipeline.toml, then {RELOCK}',
        )
    if top is not None and not in_layer:
        where = f" nor does the {view.policy.name} runtime provide it" if view is not None else ""
        return Cause(
            UNLOCKED,
            f"no rule removed anything: no locked distribution provides '{top}'{where}",
            f"add the distribution that provides '{top}' to {context.requirements_in}, then run {RELOCK} "
            "and commit the lock",
        )
    return Cause(
        INSTALLED,
        "no rule removed or changed anything it needs: the installed package fails as it is",
        f"pin a version that imports on this runtime in {context.requirements_in}, then run {RELOCK}",
    )


def combined_fix(causes: Iterable[Cause]) -> str:
    """Each distinct fix once, in the order met."""
    return "; or ".join(dict.fromkeys(cause.fix for cause in causes)) if causes else ""


def attribute(module: str, error: str, file: str, changes: Mapping[str, str]) -> list[tuple[str, str]]:
    """Changed paths most likely behind a failure: the missing module named in the error, then the
    module's own file (strip), then paths the error names, then anything removed in its package."""
    missing = missing_module(error)
    prefixes: list[str] = []
    if missing:
        prefixes.extend(paths_of_module(missing))
    prefixes.append(file)
    for candidate in prefixes:
        hits = sorted((path, rule) for path, rule in changes.items() if path == candidate or path.startswith(candidate))
        if hits:
            return hits
    named = sorted((path, rule) for path, rule in changes.items() if path in error)  # tracebacks name full paths
    if named:
        return named
    # Last, anything removed in the module's package; not when the error names a missing module no rule touched.
    package = [] if missing else module.split(".")
    while package and package != [""]:
        prefix = "/".join(package) + "/"
        hits = sorted((path, rule) for path, rule in changes.items() if path.startswith(prefix))
        if hits:
            return hits
        package = package[:-1]
    return []


def missing_module(error: str) -> str | None:
    """The module a ModuleNotFoundError names (the last one in a traceback: the innermost cause)."""
    marker = "No module named '"
    if marker in error:
        return error.rsplit(marker, 1)[1].split("'", 1)[0]
    return None
