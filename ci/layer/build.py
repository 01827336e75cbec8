"""`python -m ci build`: fetch -> install -> pristine -> prune -> verify + abi -> trace -> bytecode -> prove -> zip,
each step logging one line and recording its facts for build.json. Caches are keyed by content; a passing proof
(verify, trace, prove) is recorded sealed under digests of all its inputs and reused for those exact bytes."""

import fcntl
import hashlib
import json
import logging
import os
import platform
import shlex
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import cache, cached_property
from pathlib import Path, PurePosixPath
from typing import Any

import ci
from ci import cache_seal, zipsafe
from ci.abi import is_elf, scan_tree
from ci.arch.interpreter import TargetInterpreter, find_interpreter
from ci.config import Config
from ci.config_sections import BuildConfig
from ci.errors import CheckFailedError, ConfigError
from ci.layer import sources, verify
from ci.layer.bytecode import LAMBDA_SITE, compile_files, for_target, pyc_path
from ci.layer.wheels import CachedWheel, InstalledDistribution, fetch, install_wheels, read_layer_lock
from ci.lock.lockfile import LockFile
from ci.paths import BuildPaths
from ci.pins.check import require_safe_model
from ci.reports import sha256_file
from ci.runtime_view import RuntimeView, ensure_runtime_dir
from ci.site import rules
from ci.site.owners import BUILD_SITE, Owners
from ci.site.rules import globbed, in_vendored_libs, link_or_copy, remove_empty_dirs, tree_size, walk_files
from ci.units import as_mb

logger = logging.getLogger(__name__)
UNIMPORTED = "unimported"
PROOF_FORMAT = 1  # bump when what a proof record holds changes
PROOF_SEAL = "proof"  # the cache seal's purpose


def tree_digest(root: Path) -> str:
    """sha256 naming every directory (an empty one can be a namespace package), file (bytes, exec bit) and link."""
    paths = []
    for current, dirs, files in os.walk(root):
        dirs.sort()
        folder = Path(current)
        links = [name for name in dirs if (folder / name).is_symlink()]  # os.walk does not enter them
        paths += [folder, *(folder / name for name in sorted(files) + links)]

    def line(path: Path) -> str:
        rel = path.relative_to(root).as_posix()
        mode = path.lstat().st_mode
        if stat.S_ISDIR(mode):
            return f"d {rel}"
        if stat.S_ISLNK(mode):
            return f"l {rel} -> {path.readlink()}"
        if not stat.S_ISREG(mode):
            return f"? {rel} {stat.S_IFMT(mode):o}"
        with path.open("rb") as file:
            return f"{'x' if mode & 0o111 else 'f'} {rel} {hashlib.file_digest(file, 'sha256').hexdigest()}"

    with ThreadPoolExecutor(max_workers=2) as pool:  # hashlib releases the GIL
        return hashlib.sha256("\n".join(pool.map(line, paths)).encode()).hexdigest()


@cache
def prover_digest() -> str:
    """This repository's pipeline code: a proof made by other code is made again."""
    return cache_seal.sources_digest(Path(ci.__file__).parent)


def json_digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def file_digest(path: Path) -> str:
    return sha256_file(path) if path.is_file() else "none"


def binaries_digest(paths: tuple[str, ...]) -> str:
    """What executes the proofs: each binary's name and bytes, not where it is (a checkout elsewhere runs the same)."""
    resolved = [Path(os.path.realpath(path)) for path in paths]
    return hashlib.sha256("\n".join(f"{p.name} {file_digest(p)}" for p in resolved).encode()).hexdigest()


def reuse_note(reused: dict[str, str]) -> str:
    return f"reused: made {reused['made']} on these exact bytes, proof {reused['key'][:12]}"


class ProofStore:
    """build/cache/proofs/<kind>-<key>.json; `enabled` False (--fresh-proofs) makes and records every proof."""

    def __init__(self, root: Path, enabled: bool = True) -> None:
        self.root = root
        self.enabled = enabled

    @staticmethod
    def key(kind: str, facts: dict[str, str]) -> str:
        return hashlib.sha256(json.dumps([PROOF_FORMAT, kind, facts], sort_keys=True).encode()).hexdigest()

    def find(self, kind: str, facts: dict[str, str]) -> dict[str, Any] | None:
        """The record of a passing proof on exactly `facts`, or None (absent, unreadable, or naming others)."""
        if not self.enabled:
            return None
        key = self.key(kind, facts)
        try:
            text = (self.root / f"{kind}-{key}.json").read_text()
            record = cache_seal.unsealed_json(PROOF_SEAL, key, json.loads(text))
        except (OSError, ValueError):
            return None
        if record is None or [record.get(key) for key in ("format", "kind", "facts")] != [PROOF_FORMAT, kind, facts]:
            return None  # not sealed here, or copied or edited under another key: it does not vouch for these inputs
        return record

    def record(self, kind: str, facts: dict[str, str], result: dict[str, Any]) -> None:
        key = self.key(kind, facts)
        made = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.root / f"{kind}-{key}.json"
        partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
        body = {"format": PROOF_FORMAT, "kind": kind, "facts": facts, "made": made, "result": result}
        partial.write_text(json.dumps(cache_seal.sealed_json(PROOF_SEAL, key, body), sort_keys=True))
        partial.replace(target)  # whole or not at all: builds side by side share the cache

    def reuse_or_make(
        self,
        kind: str,
        facts: dict[str, str],
        make: Callable[[], dict[str, Any]],
        complete: Callable[[dict[str, Any]], bool] = lambda _: True,
    ) -> tuple[dict[str, Any], dict[str, str] | None]:
        """The recorded result for `facts`, or `make()`'s (recorded if `complete`; a raise records nothing)."""
        found = self.find(kind, facts)
        if found is not None:  # as record() wrote it: the seal excludes any other writer
            return found["result"], {"made": found["made"], "key": self.key(kind, facts)}
        result = make()
        if complete(result):
            self.record(kind, facts, result)
        return result, None


@dataclass
class BuildState:
    config: Config
    paths: BuildPaths
    interpreter: TargetInterpreter  # runs the target's native code (natively, emulated) or is missing
    timings: dict[str, float] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    lock: LockFile | None = None
    wheels: tuple[CachedWheel, ...] = ()
    installed: list[InstalledDistribution] = field(default_factory=list)
    baseline: verify.Baseline | None = None
    keep: frozenset[str] = frozenset()
    changes: dict[str, str] = field(default_factory=dict)  # path under python/ -> rule that removed/changed it
    proofs: dict[str, str] = field(default_factory=dict)  # proof -> how it was made, or "missing: why; fix"
    digests: dict[str, str] = field(default_factory=dict)  # the site's, as proof_facts last hashed it
    reuse_proofs: bool = True  # False: `ci build --fresh-proofs` (ProofStore)

    @property
    def options(self) -> BuildConfig:  # [build], as `ci build`'s flags left it
        return self.config.build

    @cached_property
    def runtime(self) -> RuntimeView:
        """What Lambda puts behind the layer on sys.path (installed on first use): every step importing sees it."""
        return RuntimeView(self.config.target.runtime, ensure_runtime_dir(self.config, self.paths))

    def diagnosis(self) -> verify.Context:
        requirements_in = self.config.relative(self.config.lock.requirements_in)
        return verify.Context(self.site, self.changes, self.runtime, requirements_in)

    @property
    def python(self) -> str:
        assert self.interpreter.python is not None, "no target interpreter: call executes() first"
        return self.interpreter.python

    def executes(self, proof: str) -> bool:
        """Can this build run the target's code for `proof`? Records how it is proven, or that it is missing."""
        self.proofs[proof] = self.interpreter.proof()
        return self.interpreter.available

    @property
    def site(self) -> Path:
        return self.paths.layer_tree / "python"

    @property
    def distributions(self) -> list[str]:  # locked: importlib.metadata.version() must answer each
        assert self.lock is not None
        return [pin.name for pin in self.lock.entries]

    @property
    def function_tree(self) -> Path:
        return self.paths.build / "function"

    def verified(self, pycache: bool = True) -> dict[str, Any]:
        """The tree's imports against the pristine verdict; a new failure raises, naming its cause."""
        assert self.baseline is not None
        result = verify.verify_tree(self.runner(pycache), self.site, self.distributions, self.baseline)
        if result["new_failures"]:
            raise verify.explain(result["new_failures"], self.diagnosis())
        return result

    def runner(self, pycache: bool = True) -> verify.Runner:
        """The target's interpreter; `pycache` False: the tree's own bytecode, nothing from the shared store."""
        store = for_target(self.paths.cache, self.config.target.runtime.python) if pycache else None
        return verify.Runner(self.python, store, self.runtime.behind(self.site))

    @property
    def proof_store(self) -> ProofStore:
        return ProofStore(self.paths.cache / "proofs", enabled=self.reuse_proofs)

    def proof_facts(self, *, tree_changed: bool = False) -> dict[str, str]:
        """Digests of what every proof runs on (the site is hashed again after `tree_changed`)."""
        if tree_changed or "site" not in self.digests:
            self.digests["site"] = tree_digest(self.site)
        return {
            "site": self.digests["site"],
            "interpreter": f"{self.interpreter.mode} {binaries_digest(self.interpreter.binaries)}",
            "prover": prover_digest(),
            "python": self.config.target.runtime.python,
            "machine": self.config.target.machine,
            "runtime_packages": self.runtime.packages.name,  # what the imports find behind the layer (by hashed pins)
        }

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - start, 2)


def build_layer(config: Config, paths: BuildPaths, reuse_proofs: bool = True) -> dict[str, Any]:
    """build.json's data. Builds of one directory take turns; outputs are deleted first and on failure."""
    paths.build.mkdir(parents=True, exist_ok=True)
    outputs = (paths.layer_zip, paths.function_zip, paths.report("build"))
    with (paths.build / ".build.lock").open("w") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info(f"waiting:  another build of {paths.build} is running")
            fcntl.flock(lock_file, fcntl.LOCK_EX)
        for output in outputs:
            output.unlink(missing_ok=True)
        try:
            # Digests of what this build is made from, taken before it reads any: the gate compares them.
            recorded = sources.record(config, paths)
            if paths.model.is_file():
                # The import trace unpickles the model: refuse it as `ci pins` would, before any work.
                require_safe_model(paths.model, config.lock.layer_lock)
            interpreter = find_interpreter(config.target, paths.cache)
            state = BuildState(config, paths, interpreter, reuse_proofs=reuse_proofs)
            logger.info(f"machine:  {config.target.machine} code runs {interpreter.proof().removeprefix('proven ')}")
            started = time.perf_counter()
            step_fetch(state)
            step_install(state)
            step_pristine(state)
            step_prune(state)
            # The ABI check reads ELF headers here while the verification's interpreters run: two proofs, two cores.
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
                # This host cannot load the target's machine code: the proofs are recorded missing; deploy refuses.
                logger.warning(
                    f"WARNING:  proofs missing: {', '.join(missing)}; `ci deploy` refuses this build until they exist"
                )
                logger.warning(f"          {next(iter(missing.values()))}")
            return {**report_data(state), "sources": recorded}
        except BaseException:
            for output in outputs:  # e.g. layer.zip written, function.zip not
                output.unlink(missing_ok=True)
            raise


def step_fetch(state: BuildState) -> None:
    with state.step("fetch"):
        lock = read_layer_lock(state.config.lock.layer_lock)
        result = fetch(lock, state.paths.wheel_cache, state.config.target, state.config.lock.index_url)
    state.lock, state.wheels = lock, result.wheels
    state.data["lock"] = {"path": lock.path.name, "sha256": lock.digest, "pins": len(lock.entries)}
    state.data["wheels"] = sorted(wheel.path.name for wheel in result.wheels)
    state.data["cache"] = "cold" if result.downloaded else "warm"
    source = "downloaded from the index" if result.downloaded else "all from the cache, no network"
    size = sum(wheel.path.stat().st_size for wheel in result.wheels)
    logger.info(f"fetch:    {len(result.wheels)} wheels, {as_mb(size)} ({source}) [{state.timings['fetch']:.1f}s]")


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
    target, prune = state.config.target, state.options.prune
    state.keep = globbed(state.site, state.options.keep)
    if not state.executes("imports"):
        state.data["pristine"] = {"skipped": state.proofs["imports"]}
        logger.info(f"pristine: skipped, nothing can import {target.machine} code here (proof 'imports' missing)")
        return
    cache_file = verify.baseline_cache_file(
        state.paths.cache, state.lock.digest, target, prune, state.runtime.packages.name
    )
    cached = cache_file.is_file()
    with state.step("pristine"):
        planned = rules.plan(state.site, prune)
        state.baseline = verify.baseline(state.runner(), state.site, state.distributions, planned, cache_file)
        state.keep |= state.baseline.keep
    failing = ", ".join(state.baseline.failures) or "none"
    state.data["pristine"] = {"failures": state.baseline.failures, "kept_for_imports": len(state.keep)}
    logger.info(
        f"pristine: unpruned tree {'verified before (cached)' if cached else 'verified'}; fails anyway: {failing}; "
        f"{len(state.keep)} files its imports load are kept [{state.timings['pristine']:.1f}s]"
    )


def step_prune(state: BuildState) -> None:
    options = state.options
    with state.step("prune"):
        # build.remove first, not spared for the verification's imports: a check after it names the glob.
        removed = rules.apply_removals(state.site, options.remove, options.keep)
        results: dict[str, rules.RuleResult] = dict(rules.apply_rules(state.site, options.prune, state.keep))
        if rules.STRIP in options.prune and not state.interpreter.available:
            why = f"not applied: a stripped file must be proven to load, and {state.interpreter.proof()}"
            results[rules.STRIP] = StripResult(rules.STRIP, failed={"*": why})
        elif rules.STRIP in options.prune:  # only where each stripped file is proven to load in the target's Python
            state.proofs["strip"] = state.interpreter.proof()
            load_check = dlopen_check(state.python, state.runtime.behind(state.site))
            machine = state.config.target.machine  # the host's strip reads only its own machine's ELF files
            tool = "strip" if platform.machine() == machine else f"{machine}-linux-gnu-strip"
            results[rules.STRIP] = strip_tree(state.site, state.paths.cache / "strip", load_check, tool)
        ordered = {**removed, **{name: results[name] for name in options.prune}}
    for result in ordered.values():
        state.changes.update(dict.fromkeys(result.paths, result.name))
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
        if isinstance(result, StripResult) and result.restored:
            extra = f", {len(result.restored)} restored (stripped copy did not load)"
        if result.spared:
            why = "build.keep, metadata or licenses" if result.name in removed else "imported by the verification"
            extra += f", {len(result.spared)} kept ({why})"
        logger.info(f"  - {result.name:<12} {result.files:>5} files {as_mb(result.bytes):>9}{extra}")
    logger.info(f"  [{state.timings['prune']:.1f}s]")


# The strip rule drops debug symbols outside `*.libs/` (docs/design.md); a stripped file that fails to load is restored.
LoadCheck = Callable[[list[Path], Path], dict[Path, str]]  # (files that must load, site) -> {file: error} if not
# Drops the static symbol table too (13 MB on this lock); PyInit_* and other exports stay in .dynsym.
STRIP_ARGS = ("--strip-unneeded",)


@dataclass
class StripResult(rules.RuleResult):
    restored: dict[str, str] = field(default_factory=dict)  # path -> why the original was put back
    failed: dict[str, str] = field(default_factory=dict)  # path -> strip's own error (original kept)

    def summary(self, limit: int = 20) -> dict[str, object]:
        data = super().summary(limit)
        data["restored"] = dict(sorted(self.restored.items())[:limit])
        if self.failed:
            data["failed"] = dict(sorted(self.failed.items())[:limit])
        return data


def strip_tree(site: Path, cache: Path, load_check: LoadCheck, strip_tool: str = "strip") -> StripResult:
    result = StripResult(rules.STRIP)
    if shutil.which(strip_tool) is None:
        package = "binutils" if strip_tool == "strip" else f"binutils-{strip_tool.removesuffix('-strip')}"
        result.failed["*"] = f"{strip_tool} not found on PATH (install {package}); nothing stripped"
        return result
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="strip-originals-", dir=cache) as backup_dir:
        backup = Path(backup_dir)
        changed: dict[Path, tuple[Path, int]] = {}  # file -> (original copy, bytes saved)
        for path in list(walk_files(site)):
            rel = path.relative_to(site).as_posix()
            # ELF files outside `*.libs/`: extension modules and the packages' own shared libraries
            if not (path.suffix == ".so" or ".so." in path.name) or in_vendored_libs(rel) or not is_elf(path):
                continue
            stripped, error = _stripped_copy(path, cache, strip_tool)
            if stripped is None:
                result.failed[rel] = error
                continue
            saved = path.stat().st_size - stripped.stat().st_size
            if saved <= 0:
                continue
            original = backup / rel
            original.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(path, original)
            link_or_copy(stripped, path)  # the cache entry is re-hashed before any reuse: a change is caught
            shutil.copymode(original, path)
            changed[path] = (original, saved)
        failures = load_check(sorted(changed), site) if changed else {}
        for path, (original, saved) in sorted(changed.items()):
            rel = path.relative_to(site).as_posix()
            if path in failures:
                shutil.move(original, path)  # the original, byte for byte
                result.restored[rel] = failures[path]
                continue
            result.files += 1
            result.bytes += saved
            result.paths.append(rel)
    return result


def _stripped_copy(path: Path, cache: Path, strip_tool: str) -> tuple[Path | None, str]:
    """The stripped `path` from the cache (reused only under its seal), made on a miss; (None, error) if it fails."""
    flags = "".join(arg.strip("-")[0] + arg.strip("-")[-1] for arg in STRIP_ARGS)
    key = f"{sha256_file(path)}-{flags}"
    named = [(entry, entry.name[len(key) + 1 : -len(".so")]) for entry in sorted(cache.glob(f"{key}.*.so"))]
    cached = cache_seal.sealed_entry(rules.STRIP, key, named)
    if cached is not None:
        logger.debug(f"strip: cache hit {cached.name} for {path.name}")
        return cached, ""
    partial = cache / f"{key}.{os.getpid()}.partial"
    command = [strip_tool, *STRIP_ARGS, "-o", str(partial), str(path)]
    logger.debug(f"strip: cache miss for {path.name}; run: {shlex.join(command)}")
    run = subprocess.run(command, capture_output=True, text=True, check=False)
    if run.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        return None, (run.stderr or run.stdout).strip()[-300:]
    cached = cache / f"{key}.{cache_seal.seal_file(rules.STRIP, key, partial)}.so"
    partial.replace(cached)
    return cached, ""


def dlopen_check(python: str, extra_paths: Sequence[Path] = ()) -> LoadCheck:
    """dlopen each file in the target interpreter on the verification's sys.path; a crash names its culprit."""

    def check(files: list[Path], site: Path) -> dict[Path, str]:
        items = [("library", str(path)) for path in files]
        outcomes = verify.run_checks(verify.Runner(python, None, extra_paths), site, items, jobs=1)
        return {Path(outcome.name): outcome.error for outcome in outcomes.values() if outcome.error is not None}

    return check


def step_verify(state: BuildState) -> None:
    if state.baseline is None:  # no interpreter: step_pristine recorded the proof as missing
        state.data["verify"] = {"skipped": state.proofs["imports"]}
        logger.info("verify:   skipped (proof 'imports' missing)")
        return
    with state.step("verify"):
        facts = {
            **state.proof_facts(),
            "distributions": " ".join(sorted(state.distributions)),
            "baseline": json_digest(state.baseline.to_json()),
        }
        made, reused = state.proof_store.reuse_or_make("verify", facts, state.verified)
    report = state.data["verify"] = {**made}
    how = f"in an isolated Python {state.config.target.runtime.python} (layer + the runtime's packages)"
    if reused is not None:
        report["reused"] = reused
        state.proofs["imports"] += f"; {reuse_note(reused)}"
        how = f"({reuse_note(reused)})"
    failures = report["failures"]
    logger.info(
        f"verify:   {report['checked']} imports and versions checked {how}; {len(failures)} fail as in a "
        f"pristine install ({', '.join(failures) or 'none'}) [{state.timings['verify']:.1f}s]"
    )


def step_abi(state: BuildState) -> None:
    with state.step("abi"):
        violations = scan_tree(state.paths.layer_tree, state.config.target).violations
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
        layer = zipsafe.write_zip(zipsafe.tree_entries(state.paths.layer_tree), state.paths.layer_zip, deflated)
        function = zipsafe.write_zip(zipsafe.tree_entries(state.function_tree), state.paths.function_zip)
    state.data["layer"] = asdict(layer)
    state.data["function"] = asdict(function)
    logger.info(
        f"zip:      layer.zip {as_mb(layer.zipped_bytes)} "
        f"({as_mb(layer.unzipped_bytes)} unzipped, {layer.files} files), "
        f"function.zip {function.zipped_bytes} bytes ({function.files} files) [{state.timings['zip']:.1f}s]"
    )
    logger.info(f"          layer.zip sha256 {layer.sha256}")


def step_stage_function(state: BuildState) -> None:
    package = state.config.function.handler.split(".")[0]
    source = state.config.root / package
    if not source.is_dir():
        raise ConfigError(
            f"function.handler = {state.config.function.handler!r} but {source} is not a directory",
            "set function.handler to <package>.<module>.<function> of the handler package",
        )
    if state.function_tree.exists():
        shutil.rmtree(state.function_tree)
    for path in sources.handler_files(source):
        target = state.function_tree / package / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        target.chmod(0o644)
    files, size = tree_size(state.function_tree)
    logger.info(f"function: {package}/ staged, {files} files, {size} bytes")


def report_data(state: BuildState) -> dict[str, Any]:
    target = state.config.target
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
        "target": {"runtime": target.runtime.name, "architecture": target.architecture, "glibc": target.glibc},
        # How each proof needing the target's code was made, or "missing: ..." (the deploy gate refuses those).
        "interpreter": state.interpreter.to_json(),
        "proofs": dict(sorted(state.proofs.items())),
        **public,
    }


def step_trace(state: BuildState) -> verify.ImportTrace:
    """Run the handler on the events over the pruned layer: what it uses, and that it still answers."""
    if not state.executes("trace"):
        state.data["import_trace"] = {"skipped": state.proofs["trace"]}
        logger.info("trace:    skipped, the handler cannot run here (proof 'trace' missing)")
        return verify.ImportTrace(workload="none", modules=[], files=[])
    with state.step("trace"):
        made, reused = state.proof_store.reuse_or_make(
            "trace",
            {**state.proof_facts(), **_run_facts(state)},
            lambda: {**asdict(_trace(state, pycache=True)), "log": []},
            # a partial trace is made again, warning again
            complete=lambda result: result["workload"] == "events" and not result["warnings"],
        )
    used = verify.ImportTrace(**made)
    top_level = {entry: dist.name for dist in state.installed for entry in dist.top_level}
    report = state.data["import_trace"] = used.report(state.site, top_level)
    if used.workload == "events":
        # Relative to python/: the budget reads these when no smoke report exists yet (pull requests).
        report["paths"] = sorted(used.files)
    never = [name for name, n in report["distributions"].items() if not n["imported_files"]]
    if reused is not None:
        report["reused"] = reused
        state.proofs["trace"] += f"; {reuse_note(reused)}"
    logger.info(
        f"trace:    handler on {len(used.results)} events ({used.workload}"
        + (f"; {reuse_note(reused)}" if reused else "")
        + f"): {len(used.modules)} modules, {as_mb(report['bytes'])} of the layer used; never imported: "
        f"{', '.join(never) or 'none'} [{state.timings['trace']:.1f}s]"
    )
    for warning in used.warnings:
        logger.info(f"  warning: {warning}")
    return used


def step_bytecode(state: BuildState, used: verify.ImportTrace) -> None:
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
            # Without the model the trace sees a tenth of the modules: cold starts would compile the rest (~3x slower).
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
        tree = state.function_tree  # the handler's own pyc, beside its sources
        fn_sources = [p.relative_to(tree).as_posix() for p in walk_files(tree) if p.suffix == ".py"]
        if options.bytecode == "none":
            fn_sources = []
        fn_files, fn_bytes = compile_files(state.python, python_version, tree, fn_sources, cache, False, "/var/task")
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


def step_prove(state: BuildState, before: verify.ImportTrace) -> None:
    """Bytecode and the compact options must not change a single import or answer."""
    options = state.options
    if before.workload == "none":
        logger.info("prove:    skipped (proof 'trace' missing)")
        return
    if not (state.data["bytecode"]["files"] or options.sourceless or options.prune_unimported):
        logger.info("prove:    nothing changed since the verification and the trace")
        return
    compact = [option for option in ("sourceless", "prune_unimported") if getattr(options, option)]
    what = " + ".join([f"bytecode={options.bytecode}", *compact])
    with state.step("prove"):
        facts = {
            **state.proof_facts(tree_changed=True),  # now with the bytecode (and the compact profile's changes)
            **_run_facts(state),
            "answers": json_digest(before.results),
            "changed_by": what,
            "baseline": json_digest(state.baseline.to_json() if state.baseline else None),
        }

        def make() -> dict[str, Any]:
            checked = None
            if options.sourceless or options.prune_unimported:
                result = state.verified(pycache=False)
                checked = {"checked": result["checked"], "new_failures": result["new_failures"]}
            after = _trace(state, pycache=False)  # the tree's own bytecode, nothing from a cache
            verify.compare_results(before, after, what)
            version = state.config.target.runtime.python
            sourceless = {pyc_path(rel, version, True) for rel in before.modules if rel.endswith(".py")}
            missing = sorted(set(after.modules) - set(before.modules) - sourceless)
            if missing and options.prune_unimported:
                logger.info(
                    f"  note: {len(missing)} modules imported after pruning that were not before: {missing[:3]}"
                )
            return {"proof": {"events": len(after.results), "same_answers": True}, "verify": checked}

        made, reused = state.proof_store.reuse_or_make("prove", facts, make)
    state.data["bytecode"]["proof"] = {**made["proof"], **({"reused": reused} if reused else {})}
    if made["verify"] is not None:
        state.data["verify_after_bytecode"] = made["verify"]
    checked = state.data.get("verify_after_bytecode", {}).get("checked")
    again = f"{checked} imports verified again, " if checked else ""
    logger.info(
        f"prove:    {again}handler answers all {len(before.results)} events as before, from the tree's own "
        f"bytecode{f' ({reuse_note(reused)})' if reused else ''} [{state.timings['prove']:.1f}s]"
    )


def _run_facts(state: BuildState) -> dict[str, str]:
    return {
        "function": tree_digest(state.function_tree) if state.function_tree.is_dir() else "none",
        "handler": state.config.function.handler,
        "events": cache_seal.sources_digest(state.config.smoke.events),
        "model": file_digest(state.paths.model),
        "layer_lock": file_digest(state.config.lock.layer_lock),
    }


def _trace(state: BuildState, pycache: bool) -> verify.ImportTrace:
    """The handler on the events, on the tree as it is now; a failure names the rule behind it."""
    try:
        traced = verify.trace_handler(
            state.runner(pycache),
            state.site,
            state.function_tree,
            state.config.function.handler,
            state.config.smoke.events,
            state.paths.model,
            state.config.lock.layer_lock,
        )
    except verify.TraceError as exc:
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


def _prune_unimported(state: BuildState, used: verify.ImportTrace) -> None:
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
