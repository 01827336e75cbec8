"""Step 4, verify: the layer imports in an interpreter of the target version that sees only what Lambda's does. Some
modules fail even in a pristine install, so the verdict is compared with the unpruned tree's own (cached); a new
failure names its file, and its cause with a fix (a rule, the locks, the runtime's copy, or the package itself)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

from ci import cache_seal
from ci.arch import interpreter
from ci.arch.interpreter import isolated_command, isolated_env
from ci.cache_seal import sources_digest
from ci.config import Target
from ci.errors import CheckFailedError
from ci.layer.bytecode import PycStore
from ci.runtime_view import RuntimeView
from ci.site import rules
from ci.site.tree import in_vendored_libs, walk_files

# name.cpython-311-x86_64-linux-gnu.so, name.abi3.so, name.so
_EXTENSION = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(\.(cpython-[^.]+|abi3))?\.so$")


def top_level_modules(site: Path) -> list[str]:
    names = set()
    for entry in site.iterdir():
        if entry.is_dir():
            is_package = entry.name.isidentifier() and entry.name != "__pycache__"  # not x.libs, x.dist-info
            if is_package and any(child.suffix in (".py", ".so", ".pyc") for child in entry.rglob("*")):
                names.add(entry.name)
        elif module := module_for_path(entry.name):
            names.add(module)
    return sorted(names)


def extension_modules(site: Path) -> dict[str, str]:
    found = {}
    for path in walk_files(site):
        rel = path.relative_to(site).as_posix()
        module = module_for_path(rel)
        if module is not None and path.suffix == ".so" and not in_vendored_libs(rel):
            found[module] = rel
    return dict(sorted(found.items()))


def module_for_path(rel: str) -> str | None:
    """The module a file would be imported as (`a/b/__init__.py` -> a.b), or None if not importable."""
    parts = PurePosixPath(rel).parts
    if not parts or any(not part.isidentifier() for part in parts[:-1]):
        return None
    name = parts[-1]
    if name.endswith(".py"):
        stem = name[:-3]
    elif name.endswith(".pyc") and parts[:-1][-1:] != ("__pycache__",):
        stem = name[:-4]
    else:
        match = _EXTENSION.match(name)
        if match is None:
            return None
        stem = match.group("name")
    if not stem.isidentifier():
        return None
    dotted = [*parts[:-1]] if stem == "__init__" else [*parts[:-1], stem]
    return ".".join(dotted) if dotted else None


def paths_of_module(module: str) -> tuple[str, ...]:
    """Path prefixes (relative to site) where `module` would live: a/b.py, a/b/..., a/b.<tag>.so."""
    base = module.replace(".", "/")
    return (f"{base}.py", f"{base}/", f"{base}.")


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


def attribute(module: str, error: str, file: str, changes: Mapping[str, str]) -> list[tuple[str, str]]:
    """Changed paths most likely behind a failure, the most specific first."""
    missing = missing_module(error)
    for candidate in [*(paths_of_module(missing) if missing else ()), file]:
        hits = sorted((path, rule) for path, rule in changes.items() if path.startswith(candidate))
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


VERIFIER_VERSION = 1  # bump when what a baseline records changes

_CHECK = r"""
import importlib, importlib.metadata, json, os, sys
site, record = SITE, RECORD
for kind, name in ITEMS:
    before = set(sys.modules) if record else ()
    try:
        if kind == "module":
            importlib.import_module(name)
        elif kind == "library":  # strip's load check: dlopen with RTLD_NOW, as an import does
            import ctypes
            ctypes.CDLL(name)
        else:
            importlib.metadata.version(name)
        error = None
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
    loaded = []
    if record:
        for key in set(sys.modules) - before:
            file = getattr(sys.modules.get(key), "__file__", None) or ""
            if file.startswith(site + os.sep):
                loaded.append(os.path.relpath(file, site))
    print(json.dumps({"kind": kind, "name": name, "error": error, "loaded": sorted(loaded)}), flush=True)
"""

Item = tuple[str, str]  # ("module", "scipy.linalg") | ("metadata", "scikit-learn") | ("library", "/abs/x.so")


class Outcome(NamedTuple):
    kind: str
    name: str
    error: str | None
    loaded: Sequence[str] = ()


@dataclass
class Baseline:
    """The unpruned tree's verdict: what fails anyway, and which files the imports load."""

    failures: dict[str, str]
    loaded: dict[str, list[str]]  # module -> files it loaded first (relative to site)

    def to_json(self) -> dict[str, Any]:
        return {"format": VERIFIER_VERSION, "failures": self.failures, "loaded": self.loaded}


@dataclass
class Verification:
    checked: int
    failures: dict[str, str]  # every failing item (module or dist) -> error
    pristine_failures: dict[str, str]
    new_failures: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.new_failures


def items_for(site: Path, distributions: Iterable[str]) -> list[Item]:
    modules = [*top_level_modules(site), *extension_modules(site)]
    unique = list(dict.fromkeys(modules))
    return [*(("module", name) for name in unique), *(("metadata", name) for name in distributions)]


class Runner(NamedTuple):
    """The target's `python`, its bytecode store (None: compile afresh), and the runtime's packages after the tree."""

    python: str
    pycache: PycStore | None = None
    extra_paths: Sequence[Path] = ()

    @contextmanager
    def session(self, roots: Sequence[Path]) -> Iterator[tuple[list[Path], str]]:
        """sys.path (resolved, as the store mirrors it) and a prelude sending bytecode to the store, not the tree."""
        sys_path = [path.resolve() for path in [*roots, *self.extra_paths]]
        if self.pycache is None:
            yield sys_path, ""
            return
        with self.pycache.run(sys_path) as run:
            yield sys_path, f"import sys; sys.pycache_prefix = {str(run.prefix)!r}; sys.dont_write_bytecode = False\n"


def run_checks(
    runner: Runner, site: Path, items: Sequence[Item], jobs: int, record: bool = False
) -> dict[Item, Outcome]:
    """Run the checks in `jobs` interpreters; a crashed one resumes after its culprit."""
    outcomes: dict[Item, Outcome] = {}
    pending = [batch for batch in _split(items, jobs) if batch]
    with runner.session([site]) as (sys_path, prelude):
        while pending:
            procs = [(batch, _start(runner.python, sys_path, batch, record, prelude)) for batch in pending]
            pending = []
            for batch, proc in procs:
                stdout, stderr = proc.communicate(timeout=900)
                done = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
                for row in done:
                    outcomes[(row["kind"], row["name"])] = Outcome(**row)
                rest = batch[len(done) :]
                if rest and proc.returncode != 0:
                    culprit, rest = rest[0], rest[1:]
                    code = proc.returncode
                    signal_name = signal.Signals(-code).name if -code in signal.valid_signals() else f"exit {code}"
                    why = f"the interpreter died ({signal_name}): {stderr.strip()[-300:]}"
                    outcomes[culprit] = Outcome(culprit[0], culprit[1], why)
                if rest:
                    pending.append(rest)
    return outcomes


def _start(python: str, sys_path: list[Path], batch: list[Item], record: bool, prelude: str) -> subprocess.Popen[str]:
    code = _CHECK.replace("SITE", repr(str(sys_path[0]))).replace("RECORD", repr(record))
    code = prelude + code.replace("ITEMS", repr([list(item) for item in batch]))
    return subprocess.Popen(
        isolated_command(python, sys_path, code),
        env=isolated_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _split(items: Sequence[Item], jobs: int) -> list[list[Item]]:
    """Balanced batches, each keeping a top-level package together (its imports are shared)."""
    groups: dict[str, list[Item]] = {}
    for item in items:
        key = item[1].split(".")[0] if item[0] == "module" else "~metadata"
        groups.setdefault(key, []).append(item)
    batches: list[list[Item]] = [[] for _ in range(max(1, jobs))]
    for _key, group in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        min(batches, key=len).extend(group)
    return batches


def recheck_alone(runner: Runner, site: Path, items: Iterable[Item]) -> dict[Item, Outcome]:
    """Each item in a fresh interpreter: a failure seen in a batch is real only if it fails alone."""
    outcomes = {}
    for item in items:
        outcomes.update(run_checks(runner, site, [item], jobs=1))
    return outcomes


def baseline_cache_file(
    cache: Path, lock_digest: str, target: Target, prune: Sequence[str], runtime_key: str = "alone"
) -> Path:
    """Named by the rules' definitions and this code (not only their names) and the runtime's packages."""
    decided_by = sources_digest(Path(__file__), Path(str(interpreter.__file__)))
    code = hashlib.sha256(f"{rules.fingerprint(prune)}\0{decided_by}\0{runtime_key}".encode()).hexdigest()[:16]
    key = f"{lock_digest[:16]}-{target.runtime.name}-{target.architecture}-{'-'.join(prune)}-{code}"
    return cache / "verify" / f"{key}-v{VERIFIER_VERSION}.json"


def baseline(
    runner: Runner, site: Path, distributions: Sequence[str], planned_removals: Iterable[str], cache_file: Path
) -> Baseline:
    """Verify the unpruned tree once per cache key; what the rules will remove is imported last (not credited)."""
    if cache_file.is_file():
        # Sealed by this machine (ci/cache_seal.py): a verdict written elsewhere could excuse any failure.
        data = cache_seal.unsealed_json("pristine", cache_file.name, json.loads(cache_file.read_text()))
        if data is not None and data.get("format") == VERIFIER_VERSION:
            return Baseline(failures=data["failures"], loaded=data["loaded"])
    removed = set(planned_removals)
    items = items_for(site, distributions)
    modules = extension_modules(site)
    staying = [i for i in items if i[0] != "module" or modules.get(i[1]) not in removed]
    leaving = [i for i in items if i not in staying]
    outcomes = run_checks(runner, site, staying, jobs=1, record=True)
    outcomes.update(run_checks(runner, site, leaving, jobs=2))
    loaded = {o.name: list(o.loaded) for o in outcomes.values() if o.loaded}
    failing = [item for item, o in outcomes.items() if o.error is not None]
    if failing:  # a batch failure counts only if it also fails alone
        outcomes.update(recheck_alone(runner, site, failing))
    result = Baseline(failures=_errors(outcomes), loaded=loaded)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    partial = cache_file.with_suffix(f".{os.getpid()}.partial")
    partial.write_text(json.dumps(cache_seal.sealed_json("pristine", cache_file.name, result.to_json()), indent=1))
    partial.replace(cache_file)  # other builds share the cache: never expose half a file
    return result


def _errors(outcomes: dict[Item, Outcome]) -> dict[str, str]:
    return {o.name: o.error for _item, o in sorted(outcomes.items()) if o.error is not None}


def keep_set(base: Baseline) -> frozenset[str]:
    """Files the verification of the pruned tree will load: never removed by a rule."""
    return frozenset(path for paths in base.loaded.values() for path in paths)


def verify_tree(runner: Runner, site: Path, distributions: Sequence[str], base: Baseline) -> Verification:
    """In one interpreter (docs/performance.md)."""
    items = items_for(site, distributions)
    outcomes = run_checks(runner, site, items, jobs=1)
    suspicious = [item for item, o in outcomes.items() if o.error and item[1] not in base.failures]
    if suspicious:
        outcomes.update(recheck_alone(runner, site, suspicious))
    failures = _errors(outcomes)
    new = {name: error for name, error in failures.items() if name not in base.failures}
    return Verification(
        checked=len(items),
        failures=dict(sorted(failures.items())),
        pristine_failures=dict(sorted(base.failures.items())),
        new_failures=dict(sorted(new.items())),
    )


def explain(verification: Verification, context: Context) -> CheckFailedError:
    modules = extension_modules(context.site)
    lines = []
    causes = []
    for name, error in verification.new_failures.items():
        base = name.replace(".", "/")
        sources = [rel for rel in (f"{base}/__init__.py", f"{base}.py") if (context.site / rel).is_file()]
        file = modules.get(name) or next(iter(sources), "(no file left)")
        cause = cause_of(name, error, file, context)
        causes.append(cause)
        lines.append(f"  {name} ({file}): {error}\n    {cause.detail}")
    pruned = all(cause.kind == PRUNED for cause in causes)
    what = "work in a pristine install fail after pruning" if pruned else "fail in the layer as Lambda would see it"
    return CheckFailedError(
        f"{len(verification.new_failures)} import(s) that {what}:\n" + "\n".join(lines),
        "; or ".join(dict.fromkeys(cause.fix for cause in causes)),  # each distinct fix once, in the order met
    )
