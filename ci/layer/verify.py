"""Proofs in an interpreter of the target version seeing only what Lambda's does: the layer imports (a failure the
unpruned tree's cached verdict lacks names its file and cause, with a fix), and the handler's import trace on the
committed events (what it uses; its answers prove a changed tree, bytecode or compact, equivalent)."""

import hashlib
import json
import os
import re
import signal
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from subprocess import PIPE, Popen
from typing import Any, NamedTuple

from ci import cache_seal
from ci.arch import interpreter
from ci.arch.interpreter import isolated_command, isolated_env, run_isolated
from ci.config import Target
from ci.errors import CheckFailedError
from ci.layer.bytecode import PycStore
from ci.pins.check import require_safe_model
from ci.runtime_view import RuntimeView
from ci.site import rules
from ci.site.owners import BUILD_SITE, Owners
from ci.site.rules import in_vendored_libs, walk_files

# name.py, name.pyc, name.cpython-311-x86_64-linux-gnu.so, name.abi3.so, name.so
_MODULE_FILE = re.compile(r"^(?P<stem>[^.]+)(\.pyc?|(\.(cpython-[^.]+|abi3))?\.so)$")


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
    match = _MODULE_FILE.match(parts[-1])
    in_pycache = parts[-1].endswith(".pyc") and parts[:-1][-1:] == ("__pycache__",)
    if match is None or in_pycache or not match["stem"].isidentifier():
        return None
    stem = match["stem"]
    dotted = [*parts[:-1]] if stem == "__init__" else [*parts[:-1], stem]
    return ".".join(dotted) if dotted else None


PRUNED, UNLOCKED, RUNTIME, INSTALLED = "pruned", "unlocked", "runtime", "installed"
RELOCK = "`python -m ci lock`"


@dataclass(frozen=True)
class Cause:
    kind: str  # PRUNED | UNLOCKED | RUNTIME | INSTALLED
    detail: str  # one line: what this failure is
    fix: str
    culprits: tuple[tuple[str, str], ...] = ()  # (path, rule) for PRUNED


@dataclass(frozen=True)
class Context:  # what a diagnosis reads
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
    base = missing.replace(".", "/") if missing else None
    places = [f"{base}.py", f"{base}/", f"{base}."] if base else []  # a/b.py, a/b/, a/b.<tag>.so
    # Last, anything removed in the module's package; not when the error names a missing module no rule touched.
    package = [] if missing or not module else module.split(".")
    packages = ["/".join(package[:n]) + "/" for n in range(len(package), 0, -1)]
    for place in [*places, file, None, *packages]:  # None: a changed path the error names (tracebacks name full paths)
        hits = [
            (path, rule)
            for path, rule in changes.items()
            if (path in error if place is None else path.startswith(place))
        ]
        if hits:
            return sorted(hits)
    return []


def missing_module(error: str) -> str | None:
    """The module a ModuleNotFoundError names (the last one in a traceback: the innermost cause)."""
    marker = "No module named '"
    return error.rsplit(marker, 1)[1].split("'", 1)[0] if marker in error else None


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
class Baseline:  # the unpruned tree's verdict: what fails anyway, and which files the imports load
    failures: dict[str, str]
    loaded: dict[str, list[str]]  # module -> files it loaded first (relative to site)

    def to_json(self) -> dict[str, Any]:
        return {"format": VERIFIER_VERSION, "failures": self.failures, "loaded": self.loaded}

    @property
    def keep(self) -> frozenset[str]:  # what the pruned tree's verification will load: never removed by a rule
        return frozenset(path for paths in self.loaded.values() for path in paths)


def items_for(site: Path, distributions: Iterable[str]) -> list[Item]:
    modules = dict.fromkeys([*top_level_modules(site), *extension_modules(site)])  # unique, in order
    return [*(("module", name) for name in modules), *(("metadata", name) for name in distributions)]


class Runner(NamedTuple):
    python: str  # the target's
    pycache: PycStore | None = None  # None: compile afresh
    extra_paths: Sequence[Path] = ()  # the runtime's packages, after the tree

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
        check = _CHECK.replace("SITE", repr(str(sys_path[0]))).replace("RECORD", repr(record))
        while pending:
            procs: list[tuple[list[Item], Popen[str]]] = []
            for batch in pending:
                script = prelude + check.replace("ITEMS", repr([list(item) for item in batch]))
                command = isolated_command(runner.python, sys_path, script)
                procs.append((batch, Popen(command, env=isolated_env(), stdout=PIPE, stderr=PIPE, text=True)))
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


def _confirmed_errors(
    runner: Runner, site: Path, outcomes: dict[Item, Outcome], excused: Iterable[str] = ()
) -> dict[str, str]:
    """Name -> error; a batch failure (not `excused`) is real only if it also fails alone in a fresh interpreter."""
    for item, outcome in list(outcomes.items()):
        if outcome.error is not None and item[1] not in excused:
            outcomes.update(run_checks(runner, site, [item], jobs=1))
    return {o.name: o.error for _item, o in sorted(outcomes.items()) if o.error is not None}


def baseline_cache_file(cache: Path, lock_digest: str, target: Target, prune: Sequence[str], runtime_key: str) -> Path:
    """Named by the rules' definitions and this code (not only their names) and the runtime's packages."""
    decided_by = cache_seal.sources_digest(Path(__file__), Path(str(interpreter.__file__)))
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
    result = Baseline(failures=_confirmed_errors(runner, site, outcomes), loaded=loaded)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    partial = cache_file.with_suffix(f".{os.getpid()}.partial")
    partial.write_text(json.dumps(cache_seal.sealed_json("pristine", cache_file.name, result.to_json()), indent=1))
    partial.replace(cache_file)  # other builds share the cache: never expose half a file
    return result


def verify_tree(runner: Runner, site: Path, distributions: Sequence[str], base: Baseline) -> dict[str, Any]:
    """build.json's verify: every failing item (module or distribution) -> error; passed if none is new."""
    items = items_for(site, distributions)  # in one interpreter (docs/performance.md)
    outcomes = run_checks(runner, site, items, jobs=1)
    failures = dict(sorted(_confirmed_errors(runner, site, outcomes, excused=base.failures).items()))
    return {
        "checked": len(items),
        "failures": failures,
        "pristine_failures": dict(sorted(base.failures.items())),
        "new_failures": {name: error for name, error in failures.items() if name not in base.failures},
    }


def explain(new_failures: dict[str, str], context: Context) -> CheckFailedError:
    modules = extension_modules(context.site)
    lines = []
    causes = []
    for name, error in new_failures.items():
        base = name.replace(".", "/")
        sources = [rel for rel in (f"{base}/__init__.py", f"{base}.py") if (context.site / rel).is_file()]
        file = modules.get(name) or next(iter(sources), "(no file left)")
        causes.append(cause_of(name, error, file, context))
        lines.append(f"  {name} ({file}): {error}\n    {causes[-1].detail}")
    pruned = all(cause.kind == PRUNED for cause in causes)
    what = "work in a pristine install fail after pruning" if pruned else "fail in the layer as Lambda would see it"
    return CheckFailedError(
        f"{len(new_failures)} import(s) that {what}:\n" + "\n".join(lines),
        "; or ".join(dict.fromkeys(cause.fix for cause in causes)),  # each distinct fix once, in the order met
    )


_TRACE = r"""
import importlib, json, os, sys
SITE = SITE_
opened = set()
def _audit(event, args):
    if event == "open" and args and isinstance(args[0], str):
        opened.add(args[0])
sys.addaudithook(_audit)
os.environ.update(ENV_)
module_name, function_name = HANDLER_.rsplit(".", 1)
handler = importlib.import_module(module_name)
results = []
class Context:
    function_name = "import-trace"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:import-trace"
    memory_limit_in_mb = 512
    aws_request_id = "import-trace"
    log_group_name = log_stream_name = "import-trace"
    def get_remaining_time_in_millis(self):
        return 60000
for event in EVENTS_:
    try:
        results.append(json.loads(json.dumps(getattr(handler, function_name)(event, Context()), default=repr)))
    except BaseException as exc:
        results.append({"raised": f"{type(exc).__name__}: {exc}"})
modules = {m.__file__ for m in list(sys.modules.values()) if isinstance(getattr(m, "__file__", None), str)}
files = set(modules)
with open("/proc/self/maps") as maps:
    for line in maps:
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[5].startswith("/"):
            files.add(parts[5].strip())
files |= opened
def inside(paths):
    real = {os.path.realpath(path) for path in paths}
    return sorted(os.path.relpath(p, SITE) for p in real if p.startswith(SITE + os.sep) and os.path.isfile(p))
print("TRACE " + json.dumps({"modules": inside(modules), "files": inside(files), "results": results}))
"""


@dataclass
class ImportTrace:
    workload: str  # "events" (handler + model on every event) | "import-only" (no model)
    modules: list[str]  # files of imported modules, relative to the site
    files: list[str]  # everything used: modules, opened files, mapped shared objects
    results: list[Any] = field(default_factory=list)  # the handler's answer per event
    warnings: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)  # what the handler printed (its error lines name causes)

    def broken_answers(self) -> list[int]:  # answered with a 5xx or an exception: something it needs is missing
        return [index for index, result in enumerate(self.results) if _status(result) >= 500]

    def report(self, site: Path, top_level: dict[str, str]) -> dict[str, Any]:
        """build.json's import_trace: what was used, and each distribution's share (0 for one never imported)."""
        counts = {name: {"imported_files": 0, "imported_bytes": 0} for name in sorted(set(top_level.values()))}
        owners = Owners(top_level=top_level)
        used = [rel for rel in self.files if (site / rel).is_file()]
        for rel in used:
            owner = owners.distribution(f"{BUILD_SITE}/{rel}")
            if owner in counts:
                counts[owner]["imported_files"] += 1
                counts[owner]["imported_bytes"] += (site / rel).stat().st_size
        return {
            "workload": self.workload,
            "modules": len(self.modules),
            "files": len(self.files),
            "bytes": sum((site / rel).stat().st_size for rel in used),
            "distributions": counts,
            "warnings": self.warnings,
        }


def trace_handler(
    runner: Runner,
    site: Path,
    function_root: Path,
    handler: str,
    events_dir: Path,
    model: Path | None,
    layer_lock: Path | None = None,
) -> ImportTrace:
    warnings = []
    events: list[Any] = []
    env: dict[str, str] = {}
    if model is not None and model.is_file():
        # The scan `ci pins` runs comes first: this process unpickles the model once per event.
        digest = require_safe_model(model, layer_lock)
        # tests/events/*.json (none in a missing directory), each {"description", "event", "expect"}
        documents = [json.loads(path.read_text()) for path in sorted(events_dir.glob("*.json"))]
        events = [document["event"] for document in documents if isinstance(document, dict) and "event" in document]
        env = {"MODEL_PATH": str(model), "MODEL_SHA256": digest}
        if not events:
            warnings.append(f"no events in {events_dir}: the trace covers importing the handler only")
    else:
        warnings.append(
            f"no model at {model}: the trace covers importing the handler only (train first: python -m training)"
        )
    code = _TRACE.replace("SITE_", repr(str(site.resolve()))).replace("ENV_", repr(env))
    code = code.replace("HANDLER_", repr(handler)).replace("EVENTS_", repr(events))
    with runner.session([function_root, site]) as (sys_path, prelude):
        run = run_isolated(runner.python, sys_path, prelude + code, timeout=900)
    line = next((ln for ln in run.stdout.splitlines() if ln.startswith("TRACE ")), None)
    if run.returncode != 0 or line is None:
        raise TraceError(
            f"the handler {handler} failed in the isolated interpreter with the layer"
            + (" and the runtime's packages" if runner.extra_paths else " alone"),
            run.stderr,
        )
    return ImportTrace(
        workload="events" if events else "import-only",
        **json.loads(line.removeprefix("TRACE ")),  # modules, files, results
        warnings=warnings,
        log=[ln for ln in run.stdout.splitlines() if not ln.startswith("TRACE ")],
    )


class TraceError(CheckFailedError):
    """The handler could not run on the layer; `detail` holds its traceback or error log."""

    def __init__(self, problem: str, detail: str) -> None:
        tail = "\n".join(detail.strip().splitlines()[-12:])
        super().__init__(f"{problem}:\n{tail}", "keep what the error names with build.keep, or drop the rule")
        self.detail = detail


def _status(result: Any) -> int:
    if not isinstance(result, dict) or "raised" in result:
        return 599
    if "statusCode" in result:
        return int(result["statusCode"])
    error = result.get("error")
    return int(error.get("status", 500)) if isinstance(error, dict) else 200


def compare_results(before: ImportTrace, after: ImportTrace, what: str) -> None:
    diffs = [
        f"  event {index}: {json.dumps(old, sort_keys=True)[:200]} -> {json.dumps(new, sort_keys=True)[:200]}"
        for index, (old, new) in enumerate(zip(before.results, after.results, strict=True))
        if old != new
    ]
    if diffs:
        raise CheckFailedError(
            f"after {what} the handler answers {len(diffs)} event(s) differently:\n" + "\n".join(diffs[:5]),
            f"disable {what} in pipeline.toml [build] and report the module involved",
        )
