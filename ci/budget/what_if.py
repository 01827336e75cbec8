"""`python -m ci budget --what-if SPEC ...`: would the layer still fit with these packages, and if not, what would?
Index requirements only (URLs, paths or `-e` would bypass the lock's hashes); no build output or lock is touched."""

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import os
import platform
import re
import shlex
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from ci import unpacked_layers
from ci.arch.interpreter import target_python
from ci.budget.compute import (
    BUILD_FIX,
    CI_PACKAGE,
    LAYER_PREFIX,
    UNATTRIBUTED,
    BudgetInputs,
    Entry,
    attribute,
    compare,
    compute_budget,
    gather_inputs,
    module_key,
    removal_options,
    totals,
)
from ci.budget.render import FAIL, WARN, Budget, Component, Group, Suggestion, figures, headline, verdict_message
from ci.cache_seal import sources_digest
from ci.config import ARCHITECTURES, Config, Target, load_policy
from ci.errors import CheckFailedError, PipelineError
from ci.layer import bytecode, verify
from ci.layer.build import dlopen_check, strip_tree
from ci.layer.bytecode import LAMBDA_SITE, compile_files, pyc_path
from ci.layer.wheels import CachedWheel, InstalledDistribution, fetch, find_cached, install_wheels, read_layer_lock
from ci.lock.check import newest_fitting, wheel_fits
from ci.lock.lockfile import LockFile, display_path, logical_lines, read_in, read_lock, strip_comment
from ci.lock.resolve import compile_lock, lock_jobs
from ci.paths import BuildPaths
from ci.pins.check import PACKAGES
from ci.pip import LEGACY_ALIASES, IndexFile, Project, SimpleIndex, sdist_version, target_tags
from ci.reports import Finding, sha256_file
from ci.site import rules
from ci.site.owners import BUILD_SITE, Owners, canonical
from ci.site.rules import globbed, link_or_copy, walk_files
from ci.tables import text_table
from ci.units import UNITS_NOTE, as_bytes, as_mb, mb_cell, signed_mb
from ci.zipsafe import open_zip

logger = logging.getLogger(__name__)

# A shared library named like a module (pyarrow's libarrow_python.so): loaded by other modules, not imported.
NOT_A_MODULE = "does not define module export function"
LAYER_STEPS = ("build", "verify", "wheels", "bytecode")  # the build's own code that measuring runs
# This module is measuring code too: a new measurement cache format is a new cache key.
MEASURING_CODE = [Path(__file__), *(CI_PACKAGE / "layer" / f"{step}.py" for step in LAYER_STEPS)]
CHECK = "budget-what-if"
HOW = {
    "layer.zip": "as build/layer.zip ships it",
    "measured": "installed and pruned by the build's rules now",
    "cached": "installed and pruned by the build's rules (cached)",
}
EXAMPLE = "--what-if pyarrow 'lightgbm==4.5.0' -r extra.in"


class SpecError(PipelineError):
    __str__ = PipelineError.one_line


@dataclass(frozen=True)
class WhatIfRequest:
    specs: tuple[str, ...]  # requirements as given on the command line, normalised by packaging
    files: tuple[Path, ...]  # -r files, absolute
    requirements: tuple[Requirement, ...]  # every requested requirement, the files' included

    def describe(self) -> str:
        return " ".join([*self.specs, *(f"-r {path.name}" for path in self.files)])

    def shown(self) -> dict[str, list[str]]:
        return {"specs": list(self.specs), "files": [str(path) for path in self.files]}

    def digest(self) -> str:
        """What decides the answer: the specs and the bytes of every -r file (and what they include)."""
        digest = hashlib.sha256("\0".join(self.specs).encode())
        for path in self.files:
            for included in sorted({req.file for req in read_in(path, path.parent)} | {path}):
                digest.update(f"\0{included}\0".encode() + included.read_bytes())
        return digest.hexdigest()


def parse_request(specs: Sequence[str], files: Sequence[Path], cwd: Path) -> WhatIfRequest:
    """Requirements and -r files (relative to `cwd`); anything else is a SpecError naming the argument."""
    requirements: list[Requirement] = []
    paths: list[Path] = [(cwd / path).resolve() for path in files]
    for text in (spec.strip() for spec in specs):
        if text.startswith(("-r", "--requirement")):  # -r FILE, -rFILE, -r=FILE, --requirement[=| ]FILE
            parts = shlex.split(text)
            if len(parts) == 2 and parts[0] in ("-r", "--requirement"):
                parts = [f"{parts[0]}={parts[1]}"]
            match = re.fullmatch(r"(?:-r=?|--requirement=)(.+)", parts[0]) if len(parts) == 1 else None
            if match is None:
                raise SpecError(
                    f"--what-if {text!r} is not `-r FILE`", "write one requirements file per -r, e.g. -r extra.in"
                )
            paths.append((cwd / match[1]).resolve())
            continue
        try:
            requirements.append(_checked(Requirement(text), repr(text)))
        except InvalidRequirement as exc:
            reason = str(exc).splitlines()[0].rstrip(".")
            raise SpecError(
                f"--what-if {text!r} is not a requirement ({reason})",
                f"write NAME, NAME==VERSION or NAME>=LOW,<HIGH, or -r FILE, e.g. {EXAMPLE}",
            ) from None
    if not requirements and not paths:
        raise SpecError("--what-if needs at least one requirement", f"name what to add, e.g. {EXAMPLE}")
    given = tuple(str(requirement) for requirement in requirements)
    for path in paths:
        if not path.is_file():
            raise SpecError(f"-r {path}: no such file", "give the path of a requirements file (relative to here)")
        for number, text in logical_lines(path.read_text()):  # requirement lines only: options are refused
            line = strip_comment(text)
            if line.startswith("-"):
                option = line.split(maxsplit=1)[0].split("=", 1)[0]
                raise SpecError(
                    f"--what-if -r {path}:{number}: {option!r} is an option, not a requirement (a -r file given to "
                    "--what-if holds requirement lines only)",
                    "remove the line; write each package as NAME or NAME==VERSION (the index is pipeline.toml's "
                    "lock.index_url), and pass another file with its own -r",
                )
        for direct in read_in(path, path.parent):
            requirements.append(_checked(direct.requirement, f"{path.name}:{direct.line}"))
    return WhatIfRequest(given, tuple(paths), tuple(requirements))


def _checked(requirement: Requirement, where: str) -> Requirement:
    if requirement.url:
        raise SpecError(
            f"--what-if {where}: {requirement.name} @ {requirement.url} is a direct URL",
            "name a release on the index (NAME==VERSION): the layer installs only hashed wheels from it",
        )
    return requirement


_MANYLINUX = re.compile(r"^manylinux_(\d+)_(\d+)_")
_LEGACY = {alias: (2, minor) for minor, alias in LEGACY_ALIASES.items()}
MAX_TAGS = 8


class Unfit(NamedTuple):
    name: str
    message: str
    fix: str


def target_name(target: Target) -> str:
    return f"{target.runtime.name} {target.architecture} (glibc {target.glibc}, {target.runtime.python_tag})"


def why_not_newest(name: str, resolved: str, index: SimpleIndex, target: Target) -> str | None:
    """When the resolve settled for an older release because the newest has no wheel for `target`: why."""
    project = index.project(name)
    releases = sorted({v for f, v in _versioned(project) if not (f.yanked or v.is_prerelease or v.is_devrelease)})
    if not releases or releases[-1] <= Version(resolved):
        return None
    newest = releases[-1]
    unfit = _judge(Requirement(f"{name}=={newest}"), project, target)
    return None if unfit is None else f"{name}: resolved {resolved}, not the newest {newest}: {unfit.message}"


def _judge(requirement: Requirement, project: Project, target: Target) -> Unfit | None:
    tags = target_tags(target)
    name = requirement.name
    versioned = _versioned(project)
    allowed = sorted({v for f, v in versioned if requirement.specifier.contains(v, prereleases=True)})
    if any(wheel_fits(f, target, tags) for f, v in versioned if v in allowed and not f.yanked):
        return None
    if not allowed:
        newest_any = max((v for _f, v in versioned), default="none")
        return Unfit(
            name,
            f"no release of {name} on the index matches {requirement.specifier or 'any version'}",
            f"ask for a version the index has (the newest is {newest_any})",
        )
    version = allowed[-1]
    wheels = [f for f, v in versioned if v == version and f.wheel is not None]
    newest = newest_fitting(project, target, tags)
    fitting = [f for f, v in versioned if v == newest and wheel_fits(f, target, tags)]
    alternative = (
        f"{name} {newest} is the newest version {target.runtime.name} {target.architecture} can load "
        f"({_shown_tags(fitting, target).removeprefix('its ').replace(' are tagged ', ': ')})"
        if newest is not None
        else f"no version of {name} has a wheel {target.runtime.name} {target.architecture} can load"
    )
    if not wheels:
        return Unfit(
            name,
            f"{name} {version} publishes no wheel (sdist only; the layer installs wheels only); {alternative}",
            _fix(name, newest, []),
        )
    others = _other_targets(wheels, target)
    have = _shown_tags(wheels, target)
    message = f"{name} {version} has no wheel for {target_name(target)}: {have}{_glibc_gap(wheels, target)}"
    if others:
        message += f"; {', '.join(others)} can load it"
    return Unfit(name, f"{message}; {alternative}", _fix(name, newest, others))


def _glibc_gap(wheels: list[IndexFile], target: Target) -> str:
    """ "; the oldest needs glibc 2.28: python3.11's glibc 2.26 ..." when the machine fits but glibc does not."""
    needed = []
    for tag in {t.platform for f in wheels if f.wheel for t in f.wheel[1] if t.platform.endswith(target.machine)}:
        match = _MANYLINUX.match(tag)  # manylinux_2_28_x86_64, else a legacy alias (manylinux2014_x86_64)
        glibc = (int(match[1]), int(match[2])) if match else _LEGACY.get(tag.split("_", 1)[0])
        if glibc is not None:
            needed.append(glibc)
    if not needed or min(needed) <= target.glibc_tuple:
        return ""
    major, minor = min(needed)
    return f"; the oldest needs glibc {major}.{minor}: {target.runtime.name}'s glibc {target.glibc} cannot load it"


def _other_targets(wheels: list[IndexFile], current: Target) -> list[str]:
    """Other runtimes and architectures `wheels` fit; this architecture first (a smaller move than a new machine)."""
    found = []
    for architecture in sorted(ARCHITECTURES, key=lambda arch: arch != current.architecture):
        for runtime in load_policy().values():
            target = Target(runtime=runtime, architecture=architecture, glibc=runtime.glibc)
            if (runtime.name, architecture) == (current.runtime.name, current.architecture):
                continue
            tags = target_tags(target)
            if any(wheel_fits(f, target, tags) for f in wheels):
                found.append(f"{runtime.name} {architecture} (glibc {runtime.glibc})")
    return found


def _fix(name: str, newest: Version | None, others: list[str]) -> str:
    ways = []
    if newest is not None:
        ways.append(f"ask for {name}=={newest} (or a range that allows it)")
    if others:
        runtime, architecture = others[0].split(" ")[:2]
        ways.append(
            f'move the target ([target] runtime = "{runtime}", architecture = "{architecture}" in pipeline.toml)'
        )
    return " or ".join(ways) if ways else f"drop {name}: no release of it can run on any Lambda Python runtime"


def _shown_tags(files: list[IndexFile], target: Target) -> str:
    """'its Linux wheels are tagged py3-none-manylinux_2_28_x86_64, ...': the target's Python and machine first."""
    accepted = target_tags(target)
    pythons = {(t.interpreter, t.abi) for t in accepted}
    tags = {t for f in files if f.wheel for t in f.wheel[1]}
    relevant = {t for t in tags if (t.interpreter, t.abi) in pythons} or tags
    linux = {t for t in relevant if "linux" in t.platform} or relevant
    shown = sorted(linux, key=lambda t: (not t.platform.endswith(target.machine), str(t)))
    more = f" (+{len(shown) - MAX_TAGS} more)" if len(shown) > MAX_TAGS else ""
    which = "Linux wheels" if any("linux" in t.platform for t in shown) else "wheels"
    return f"its {which} are tagged {', '.join(str(t) for t in shown[:MAX_TAGS])}{more}"


def _versioned(project: Project) -> list[tuple[IndexFile, Version]]:
    versions = ((f, f.wheel[0] if f.wheel else sdist_version(project.name, f.filename)) for f in project.files)
    return [(file, version) for file, version in versions if version is not None]


DEFAULT_INDEX = "https://pypi.org/simple"
UV_DETAIL_LINES = 8


class Move(NamedTuple):
    name: str
    before: str
    after: str
    required_by: tuple[str, ...]  # `# via` of the new lock


class UnresolvableError(CheckFailedError):
    """No lock satisfies requirements.in plus the request for this target; `unfit` says why, per package."""

    def __init__(self, problem: str, fix: str, unfit: list[Unfit]) -> None:
        super().__init__(problem, fix)
        self.unfit = unfit


def index_for(config: Config, paths: BuildPaths) -> SimpleIndex:
    """The configured index; PyPI's answers share `ci lock`'s cache, any other index gets its own."""
    url = config.lock.index_url
    if url.rstrip("/") == DEFAULT_INDEX:
        return SimpleIndex(url, paths.cache / "pypi-simple")
    return SimpleIndex(url, paths.cache / "index" / hashlib.sha256(url.encode()).hexdigest()[:16])


def resolve(config: Config, paths: BuildPaths, request: WhatIfRequest, workdir: Path) -> LockFile:
    """The what-if lock: requirements.in plus the request, by `ci lock`'s resolver, read as strictly as the build's."""
    workdir.mkdir(parents=True, exist_ok=True)
    lines = [
        "# python -m ci budget --what-if: the layer's requirements plus what was asked about",
        f"-r {config.lock.requirements_in.resolve()}",
        *(str(requirement) for requirement in request.requirements),  # the specs, then the -r files', checked
    ]
    (workdir / "what-if.in").write_text("\n".join(lines) + "\n")
    output = workdir / "requirements-layer.txt"
    shutil.copyfile(config.lock.layer_lock, output)  # the current pins, preferred by the resolver
    what_if = dataclasses.replace(lock_jobs(config)[0], cwd=workdir, inputs=("what-if.in",), output=output)
    try:
        compile_lock(what_if, config.lock.index_url, uv_cache=paths.cache / "uv")
    except PipelineError as exc:
        index = index_for(config, paths)
        unfit: list[Unfit] = []  # each request no version of which the target loads, and what it has instead
        for requirement in request.requirements:
            project = index.project(requirement.name)
            found = _judge(requirement, project, config.target)
            if found is not None and project.from_cache:  # never explain from a stale answer: ask the index again
                found = _judge(requirement, index.project(requirement.name, fresh=True), config.target)
            if found is not None:
                unfit.append(found)
        if unfit:
            problem, fix = "\n".join(u.message for u in unfit), "; ".join(f"{u.name}: {u.fix}" for u in unfit)
            raise UnresolvableError(problem, fix, unfit) from None
        detail = "\n".join(exc.problem.splitlines()[1 : 1 + UV_DETAIL_LINES])
        raise UnresolvableError(
            f"requirements.in + {request.describe()} has no solution for {config.target.runtime.name} "
            f"{config.target.architecture}:\n{detail}",
            "loosen the requirement uv names (or the one in requirements.in it conflicts with), then ask again",
            [],
        ) from None
    return read_layer_lock(output)


class Current(NamedTuple):
    """The layer the question is asked against: the current lock, as build/layer.zip holds it."""

    lock: LockFile
    inputs: BudgetInputs
    budget: Budget
    layer_sha256: str
    entries: dict[str, list[Entry]]  # canonical distribution ("" for unattributed files) -> layer.zip entries


def current_state(config: Config, paths: BuildPaths, limit_bytes: int | None) -> Current:
    """Refused unless layer.zip was built from the current lock: the delta must be against that lock's layer."""
    lock = read_layer_lock(config.lock.layer_lock)
    if not paths.layer_zip.is_file():  # why, and the one thing to run (a failed build deletes its zips)
        shown = display_path(paths.layer_zip, config.root)
        try:
            last = json.loads(paths.report("build").read_text())
        except (OSError, ValueError):
            last = None
        if isinstance(last, dict) and last.get("passed") is False and last.get("error"):
            first = str(last["error"]).splitlines()[0]
            raise PipelineError(
                f"{shown} is missing: the last `python -m ci build` failed ({first}), and the what-if measures "
                "against the current lock's layer",
                f"{last.get('fix') or 'fix the build'}; then `python -m ci build` and ask again",
            )
        if not paths.model.is_file():
            raise PipelineError(
                f"{shown} is missing and there is no trained model ({display_path(paths.model, config.root)}): the "
                "what-if measures against the current lock's layer, which the build makes with the model",
                "run `make pipeline` once (or `python -m training`, then `python -m ci build`), then ask again",
            )
        raise PipelineError(f"{shown} is missing: the what-if measures against the current lock's layer", BUILD_FIX)
    inputs = gather_inputs(config, paths, limit_bytes)
    report = inputs.build_report
    if not report:
        raise PipelineError(
            f"{paths.report('build')} not found: the projection starts from the current build", BUILD_FIX
        )
    layer_sha = sha256_file(inputs.layer.path)
    built = (report.get("lock") or {}).get("sha256"), (report.get("layer") or {}).get("sha256")
    if built != (lock.digest, layer_sha):
        raise PipelineError(
            f"{display_path(paths.layer_zip, config.root)} was not built from the current "
            f"{config.relative(config.lock.layer_lock)}: the delta would be against another layer",
            "run `python -m ci build` first, then ask again",
        )
    owner, _ = attribute(inputs.layer, report.get("top_level") or {}, list(report["distributions"]))
    entries: dict[str, list[Entry]] = {}
    for entry in inputs.layer.entries:
        name = owner[entry.path]
        entries.setdefault("" if name == UNATTRIBUTED else canonical(name), []).append(entry)
    return Current(lock, inputs, compute_budget(inputs), layer_sha, entries)


@dataclass(frozen=True)
class Projection:
    """The projected layer: layer.zip's own entries for unchanged distributions, measured files for the others."""

    request: WhatIfRequest
    target: Target
    budget: Budget  # the projected function + layers, compared with the current lock's
    entries: dict[str, list[Entry]]  # canonical distribution ("" for unattributed) -> projected layer entries
    how: dict[str, str]  # canonical distribution -> "layer.zip" | "measured" | "cached"
    measured: dict[str, "Measured"]
    added: list[str]
    moves: list[Move]
    held_back: list[str]
    options: list[Suggestion] = field(default_factory=list)

    @property
    def bytecode_if_imported(self) -> dict[str, int]:
        return {name: sum(self.measured[name].pyc.values()) for name in self.added if name in self.measured}


def project(
    config: Config,
    paths: BuildPaths,
    current: Current,
    request: WhatIfRequest,
    lock: LockFile,
    measured: dict[str, "Measured"],
) -> Projection:
    """Bytecode follows the build's mode; an added distribution gets none in `runtime` mode (not imported yet)."""
    mode = current.budget.bytecode.mode
    version = config.target.runtime.python
    entries: dict[str, list[Entry]] = {"": list(current.entries.get("", []))}
    how: dict[str, str] = {}
    added = sorted(name for name in lock.pins if name not in current.lock.pins)
    for name in lock.pins:
        old = current.entries.get(name, [])
        if name not in measured:
            entries[name], how[name] = list(old), "layer.zip"
            continue
        # runtime (or unknown) mode: the .py whose .pyc the current layer ships, the modules the build compiled
        shipped = [] if mode == "none" or name in added else old  # an added distribution is not imported yet
        compiled = {module_key(e.path) for e in shipped if e.path.endswith(".pyc")} - {None}
        modules = {str(key).removeprefix(LAYER_PREFIX) + ".py" for key in compiled}
        files = [Entry(LAYER_PREFIX + rel, size, 0) for rel, size in measured[name].files.items()]
        files += [
            Entry(LAYER_PREFIX + pyc_path(rel, version, False), size, 0)
            for rel, size in measured[name].pyc.items()
            if mode == "all" or rel in modules
        ]
        entries[name], how[name] = files, "cached" if measured[name].from_cache else "measured"
    layer = [entry for group in entries.values() for entry in group]
    lock_shown = display_path(lock.path, config.root)
    components = [
        *(c for c in current.budget.components if c.kind == "function"),
        Component("layer.zip (projected)", "layer", lock_shown, sum(e.unzipped_bytes for e in layer), None, len(layer)),
        *(c for c in current.budget.components if c.kind == "extra layer"),
    ]
    groups = [Group(name, *totals(group), lock.pins[name].version) for name, group in entries.items() if name]
    budget = dataclasses.replace(
        current.budget,
        components=components,
        distributions=sorted(groups, key=lambda g: (-g.unzipped_bytes, g.name)),
        categories=[],
        rules=[],
        largest_files=[],
        largest_directories=[],
        imports=None,
        lock={"path": lock_shown, "sha256": lock.digest},
        compact_saving_bytes=None,
        suggestions=[],
    )
    sizes = {name: sum(e.unzipped_bytes for e in group) for name, group in current.entries.items()}
    before = [
        {"name": n, "unzipped_bytes": sizes.get(n, 0), "version": pin.version} for n, pin in current.lock.pins.items()
    ]
    source = f"{config.relative(current.lock.path)} ({current.lock.digest[:12]}) as build/layer.zip ships it"
    baseline = {"used_bytes": current.budget.used_bytes, "distributions": before}
    budget = dataclasses.replace(budget, comparison=compare(budget, baseline, "the current lock", source))
    moves = [
        Move(name, str(pin.version), str(after.version), tuple(after.via))
        for name, pin in sorted(current.lock.pins.items())
        if (after := lock.pins.get(name)) is not None and after.version != pin.version
    ]
    # For each requested package the resolve settled below the newest release of: why, if for the target.
    index = index_for(config, paths)
    names = dict.fromkeys(canonicalize_name(req.name) for req in request.requirements)  # in order, once each
    pins = [pin for name in names if (pin := lock.pins.get(name)) is not None and pin.version]
    notes = [note for pin in pins if (note := why_not_newest(pin.name, str(pin.version), index, config.target))]
    return Projection(request, config.target, budget, entries, how, measured, added, moves, notes)


def measure_compact(
    config: Config, paths: BuildPaths, projection: Projection, python: str, base_site: Path, new_site: Path | None
) -> tuple[int | None, str]:
    """(function + layers bytes or None, log line) with the compact step, the handler traced on the projected layer:
    an added distribution may be imported by an existing one (pandas imports pyarrow when present)."""
    if not paths.model.is_file():
        return None, f"not measured: no model at {paths.model} to trace the handler with (train first)"
    workdir = paths.build / "what-if" / f"compact-{os.getpid()}"
    shutil.rmtree(workdir, ignore_errors=True)
    try:
        site = workdir / BUILD_SITE
        for name, entries in projection.entries.items():
            source = new_site if name in projection.measured and new_site is not None else base_site
            for entry in entries:
                rel = entry.path.removeprefix(LAYER_PREFIX)
                if "__pycache__" in rel.split("/"):
                    continue  # the build traces the tree before it compiles anything
                (site / rel).parent.mkdir(parents=True, exist_ok=True)
                link_or_copy(source / rel, site / rel)
        function = workdir / "function"
        with open_zip(paths.function_zip, "run `python -m ci build` first") as zipped:
            zipped.extract_all(function)
        version = config.target.runtime.python
        try:
            used = verify.trace_handler(
                verify.Runner(python, bytecode.for_target(paths.cache, version)),
                site,
                function,
                config.function.handler,
                config.smoke.events,
                paths.model,
                layer_lock=config.lock.layer_lock,
            )
        except CheckFailedError as exc:
            return None, f"not measured: the handler did not run on the projected layer: {exc.problem[-300:]}"
        broken = used.broken_answers()
        if used.workload != "events" or broken:
            why = f"{len(broken)} event(s) answered with a server error" if broken else "no events were traced"
            return None, f"not measured: the handler's trace on the projected layer is not usable: {why}"
        # What the build's compact step leaves of `site` (changed in place): the bytes of python/.
        keep = set(used.files) | globbed(site, config.build.keep)
        for path in list(walk_files(site)):
            pure = PurePosixPath(path.relative_to(site).as_posix())
            metadata = any(part.endswith(".dist-info") for part in pure.parts)
            if str(pure) not in keep and not rules.always_kept(pure) and not metadata:
                path.unlink()
        sourceless = sorted(rel for rel in used.modules if rel.endswith(".py") and (site / rel).is_file())
        compile_files(python, version, site, sourceless, paths.cache / "bytecode", True, LAMBDA_SITE)
        for rel in sourceless:
            (site / rel).unlink()
        size = sum(path.stat().st_size for path in walk_files(site))
        note = f"the handler traced on the projected layer ({len(used.files)} files used); with the compact profile"
        layer = next(c for c in projection.budget.components if c.kind == "layer")
        return projection.budget.used_bytes - layer.unzipped_bytes + size, f"{note} the layer is {as_mb(size)}"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass(frozen=True)
class Measured:
    """One distribution as the build would ship it, before any bytecode is added."""

    version: str
    sha256: str
    files: dict[str, int]  # path relative to python/ -> bytes, after pruning and strip
    pyc: dict[str, int]  # .py path -> bytes of its unchecked-hash .pyc
    import_errors: dict[str, str] = field(default_factory=dict)  # fail even unpruned, beside the current layer
    from_cache: bool = False


@dataclass(frozen=True)
class Measurer:
    python: str
    config: Config
    paths: BuildPaths  # the build's cache (strip, bytecode, pyc stores are shared with it); scratch in build/what-if/
    base_site: Callable[[], Path]  # the current layer's python/, unpacked on first use

    @property
    def setting_key(self) -> str:
        build, target = self.config.build, self.config.target
        settings = repr((build.keep, build.remove, target.runtime.name, target.architecture, target.glibc))
        parts = [rules.fingerprint(build.prune), settings, sources_digest(*MEASURING_CODE)]
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]

    def measure(self, wheels: Sequence[CachedWheel]) -> dict[str, Measured]:
        """Each wheel's distribution by canonical name; cached ones are read, the rest installed together."""
        found: dict[str, Measured] = {}
        for wheel in wheels:
            with contextlib.suppress(OSError, json.JSONDecodeError, TypeError):
                data = json.loads(self._cache_file(wheel).read_text())
                if data.get("sha256") == wheel.sha256:
                    found[wheel.pin.name] = Measured(**{**data, "from_cache": True})
        todo = sorted((wheel for wheel in wheels if wheel.pin.name not in found), key=lambda w: w.pin.name)
        if not todo:
            return found
        # The rest are installed together into a tree kept for `tree`; each distribution's files and .pyc are read.
        site = self._tree_dir(todo)
        installed, errors = self._prepare(site, todo)
        owners = Owners.of_installed((d.name, d.files) for d in installed)
        files: dict[str, dict[str, int]] = {d.name: {} for d in installed}
        for path in walk_files(site):
            rel = path.relative_to(site).as_posix()
            owner = owners.distribution(f"{BUILD_SITE}/{rel}")
            if owner in files:
                files[owner][rel] = path.stat().st_size
        sources = sorted(rel for shipped in files.values() for rel in shipped if rel.endswith(".py"))
        version = self.config.target.runtime.python
        # Into the tree's __pycache__/ (whoever reads the tree as the build leaves it before bytecode skips them).
        compile_files(self.python, version, site, sources, self.paths.cache / "bytecode", False, LAMBDA_SITE)
        pyc = {rel: (site / pyc_path(rel, version, False)).stat().st_size for rel in sources}
        for d, wheel in zip(installed, todo, strict=True):
            found[wheel.pin.name] = Measured(
                version=d.version,
                sha256=wheel.sha256,
                files=dict(sorted(files[d.name].items())),
                pyc={rel: pyc[rel] for rel in sorted(files[d.name]) if rel in pyc},
                import_errors={name: error for name, error in errors.items() if _owned(name, files[d.name], d.name)},
            )
            _write_cached(self._cache_file(wheel), found[wheel.pin.name])
        return found

    def _cache_file(self, wheel: CachedWheel) -> Path:
        return self.paths.cache / "what-if" / f"{wheel.sha256[:32]}-{self.setting_key}.json"

    def tree(self, wheels: Sequence[CachedWheel]) -> Path:
        """python/ of these wheels before bytecode, as the last measurement left it, for the compact profile."""
        site = self._tree_dir(wheels)
        if not (site.parent / "done").is_file():
            self._prepare(site, wheels)
        return site

    def discard_trees(self) -> None:
        """This process's kept trees: hundreds of MB for a large distribution."""
        for tree in (self.paths.build / "what-if" / "trees").glob(f"*-{os.getpid()}"):
            shutil.rmtree(tree, ignore_errors=True)

    def _tree_dir(self, wheels: Sequence[CachedWheel]) -> Path:
        """One per process and wheel set: a what-if beside this one never shares (or deletes) it."""
        key = hashlib.sha256("\0".join([*sorted(w.sha256 for w in wheels), self.setting_key]).encode()).hexdigest()
        return self.paths.build / "what-if" / "trees" / f"{key[:16]}-{os.getpid()}" / BUILD_SITE

    def _prepare(self, site: Path, wheels: Sequence[CachedWheel]) -> tuple[list[InstalledDistribution], dict[str, str]]:
        """Install, import (keep what loads), remove, prune and strip, as the build does; the import errors."""
        shutil.rmtree(site.parent, ignore_errors=True)
        installed = install_wheels(list(wheels), site, unpacked=self.paths.cache / "unpacked")
        errors: dict[str, str] = {}
        keep = globbed(site, self.config.build.keep)
        if platform.machine() == self.config.target.machine:  # imports prove nothing on another machine
            planned = rules.plan(site, self.config.build.prune)
            pycache = bytecode.for_target(self.paths.cache, self.config.target.runtime.python)
            runner = verify.Runner(self.python, pycache, [self.base_site()])
            verdict = verify.baseline(runner, site, [d.name for d in installed], planned, site.parent / "verdict.json")
            (site.parent / "verdict.json").unlink(missing_ok=True)
            keep |= verdict.keep
            errors = {name: error for name, error in verdict.failures.items() if NOT_A_MODULE not in error}
        rules.apply_removals(site, self.config.build.remove, self.config.build.keep, strict=False)
        rules.apply_rules(site, self.config.build.prune, keep)
        if rules.STRIP in self.config.build.prune:
            strip_tree(site, self.paths.cache / "strip", dlopen_check(self.python))
        (site.parent / "done").write_text("")  # what `tree` reuses (its __pycache__/ is never read from it)
        return installed, errors


def _owned(item: str, files: dict[str, int], distribution: str) -> bool:
    """Is the failing check `item` (a module or a distribution's metadata) about this distribution?"""
    top = item.split(".")[0]
    return item == distribution or any(rel.split("/")[0] in (top, f"{top}.py") for rel in files)


def answer_key(config: Config, paths: BuildPaths, current: Current, request: WhatIfRequest) -> str:
    inputs = current.inputs
    trace = inputs.import_trace
    in_files = sorted({req.file for req in read_in(config.lock.requirements_in, config.root)})
    target, budget = config.target, config.budget
    settings = (target.runtime, target.architecture, target.glibc, config.build, config.lock.index_url)
    files = [current.lock.path, config.lock.requirements_in, *in_files, inputs.function.path]
    parts = [
        request.digest(),
        repr((*settings, budget.extra_layer_arns, inputs.limit_bytes, budget.warn_fraction)),
        rules.fingerprint(config.build.prune),
        current.layer_sha256,
        json.dumps([trace.source, sorted(trace.files)] if trace else None),
        sources_digest(*files, *(extra.path for extra in inputs.extra_zips), paths.model, config.smoke.events),
        sources_digest(*(CI_PACKAGE / package for package in ("budget", "lock", "layer", "site"))),
    ]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _write_cached(path: Path, value: "Measured | Answer") -> None:
    """Temp file + rename: concurrent what-ifs share the caches, and never read a torn entry."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps({name: item for name, item in asdict(value).items() if name != "from_cache"}))
    partial.replace(path)


def what_if(
    config: Config, paths: BuildPaths, request: WhatIfRequest, limit_bytes: int | None = None, fresh: bool = False
) -> "Answer":
    started = time.perf_counter()
    current = current_state(config, paths, limit_bytes)
    key = answer_key(config, paths, current, request)
    answer_file = paths.build / "what-if" / "answers" / f"{key}.json"
    if not fresh:
        with contextlib.suppress(OSError, json.JSONDecodeError, TypeError):
            cached = Answer(**{**json.loads(answer_file.read_text()), "from_cache": True})
            cached.timings = {"total": round(time.perf_counter() - started, 2)}
            return cached
    timings: dict[str, float] = {}

    def step(name: str, note: str = "") -> None:
        timings[name] = round(time.perf_counter() - started - sum(timings.values()), 2)
        if note:
            logger.info(f"{name + ':':<10}{note} [{timings[name]:.1f}s]")

    workdir = paths.build / "what-if" / key[:16]
    lock = resolve(config, paths, request, workdir)
    step("resolve", f"{len(lock.entries)} pins for {target_name(config.target)}")
    wheels, missing = find_cached(lock, paths.wheel_cache, config.target)  # the build's hashed cache first
    if missing:
        partial = workdir / "missing.txt"  # only these go to pip
        partial.write_text("".join(f"{pin.text} {' '.join(f'--hash={h}' for h in pin.hashes)}\n" for pin in missing))
        wheels += fetch(read_lock(partial), paths.wheel_cache, config.target, config.lock.index_url).wheels
    step("fetch", f"{len(wheels)} wheels, {len(missing)} downloaded, the rest from the build's cache")
    new: list[CachedWheel] = []  # what the current layer does not ship byte for byte
    for wheel in wheels:
        before = current.lock.pins.get(wheel.pin.name)
        same = before is not None and before.version == wheel.pin.version and wheel.sha256 in before.sha256
        if not (same and wheel.pin.name in current.entries):
            new.append(wheel)
    python = target_python(config.target.runtime.python)
    compact_bytes = None
    with contextlib.ExitStack() as held:

        @functools.cache
        def base_site() -> Path:
            """The current layer's python/, unpacked on first use and held until the measuring ends."""
            layers, layer_zip = paths.unpacked_layers, current.inputs.layer.path
            return held.enter_context(unpacked_layers.reading(layers, layer_zip)) / BUILD_SITE

        measurer = Measurer(python, config, paths, base_site)
        held.callback(measurer.discard_trees)
        measured = measurer.measure(new)
        fresh_count = sum(1 for m in measured.values() if not m.from_cache)
        step(
            "measure",
            f"{len(wheels) - len(new)} distributions as build/layer.zip ships them; {len(new)} installed and pruned "
            f"by the build's rules ({fresh_count} measured now, {len(new) - fresh_count} cached)",
        )
        projection = project(config, paths, current, request, lock, measured)
        step("project")
        budget = projection.budget
        if not current.inputs.compact_profile and budget.status == FAIL:
            # Only an answer over the limit lists options: the handler's trace costs seconds, spent only then.
            new_site = measurer.tree(new) if new else None
            compact_bytes, note = measure_compact(config, paths, projection, python, base_site(), new_site)
            step("compact", note)
    imports = current.budget.imports
    needed_by_added = {name for name, pin in lock.pins.items() if set(pin.via) & set(projection.added)}
    never = [canonical(use.name) for use in imports.never_imported] if imports else []
    options = removal_options(
        budget,
        current.inputs,
        imports,
        projection.entries,
        set(projection.entries) - set(projection.added),  # what the current import trace can speak for
        [name for name in never if name not in needed_by_added],
        compact_bytes=compact_bytes,
    )
    projection = dataclasses.replace(projection, options=options)
    step("options")
    timings["total"] = round(time.perf_counter() - started, 2)
    findings = _findings(projection)
    report = report_data(projection, timings)
    notes = [finding.to_dict() for finding in findings]
    answer = Answer(budget.passed, render_text(projection, findings), report, notes, timings)
    _write_cached(answer_file, answer)
    return answer


@dataclass
class Answer:
    """Rendered once and cached as text + data, so a cached answer prints exactly what the first one did."""

    passed: bool
    text: str
    report: dict[str, Any]
    findings: list[dict[str, Any]]
    timings: dict[str, float] = field(default_factory=dict)
    from_cache: bool = False


def render_text(projection: Projection, findings: list[Finding]) -> str:
    budget = projection.budget
    comparison = budget.comparison
    assert comparison is not None
    parts = [
        f"What if: requirements.in + {projection.request.describe()}, for {target_name(projection.target)}",
        f"resolved into {budget.lock['path']} (the committed lock is unchanged)",
        headline(budget).replace("Lambda size budget:", "Projected size budget:", 1),
        f"({UNITS_NOTE}; unzipped)",
        "",
    ]
    marks = {"added": "+", "removed": "-", "changed": "~"}
    rows = [
        (
            f"{marks.get(row.status, ' ')} {row.name}",
            HOW.get(projection.how.get(row.name, ""), "removed from the lock"),
            row.before_version or "-",
            row.after_version or "-",
            as_bytes(row.after_bytes),
            signed_mb(row.delta_bytes),
        )
        for row in comparison.changes
    ]
    same = [row for row in comparison.distributions if row.status == "unchanged"]
    headers = ["Distribution", "measured", "before", "after", "unzipped bytes", "delta"]
    parts.append(text_table(headers, rows, numeric_from=2) if rows else "no distribution changes")
    unchanged_bytes = sum(row.after_bytes for row in same)
    parts.append(f"{len(same)} distributions unchanged ({as_mb(unchanged_bytes)}, as build/layer.zip ships them)")
    components = [(c.name, as_bytes(c.unzipped_bytes), mb_cell(c.unzipped_bytes)) for c in budget.components]
    total = ("total", as_bytes(budget.used_bytes), mb_cell(budget.used_bytes))
    parts += ["", text_table(["What Lambda counts", "unzipped bytes", "MB"], [*components, total], numeric_from=1)]
    notes = [f for f in findings if f.severity != "error"]
    if notes:
        parts += ["", *(f"{f.severity}: {f.message}" + (f"\n  fix: {f.fix}" if f.fix else "") for f in notes)]
    if budget.status == FAIL:
        parts += ["", "What would make it fit, measured on this projection (largest saving first):"]
        for number, option in enumerate(projection.options, start=1):
            parts.append(f"  {number}. {option.describe(budget.limit_bytes)}")
    return "\n".join(parts)


def _findings(projection: Projection) -> list[Finding]:
    budget = projection.budget
    asked = projection.request.describe()
    found = []
    if budget.status in (FAIL, WARN):
        first = (verdict_message(budget) or budget.status).splitlines()[0]
        fitting = [o for o in projection.options if o.fits(budget.limit_bytes) and o.saves_bytes]
        chosen = fitting[0] if fitting else (projection.options[-1] if projection.options else None)
        fix = ""
        if budget.status == FAIL and chosen is not None:
            fix = f"{chosen.paste_text()} ({chosen.outcome(budget.limit_bytes)})" if chosen.paste else chosen.action
        found.append(Finding(CHECK, "error" if budget.status == FAIL else "warning", f"with {asked}: {first}", fix))
    for move in projection.moves:
        model = move.name in PACKAGES.values()
        message = (
            f"{move.name} {move.before} -> {move.after}: the resolver moves this existing pin to fit {asked} "
            f"(required by {', '.join(move.required_by) or 'the request'})"
            + ("; the model is pickled with it, so the model's pins change" if model else "")
        )
        fix = "retrain after `python -m ci lock` (python -m training) and rerun `python -m ci pins`" if model else ""
        found.append(Finding(CHECK, "warning", message, fix))
    found += [Finding(CHECK, "notice", note) for note in projection.held_back]
    for name, measured in sorted(projection.measured.items()):
        if measured.import_errors:
            first, error = min(measured.import_errors.items())
            more = f" (+{len(measured.import_errors) - 1} more)" if len(measured.import_errors) > 1 else ""
            message = (
                f"{name} {measured.version}: {first} fails to import on {projection.target.runtime.name} beside "
                f"the current layer, even unpruned: {error[:200]}{more}"
            )
            found.append(Finding(CHECK, "warning", message))
    for name, size in sorted(projection.bytecode_if_imported.items()):
        if size:
            message = (
                f"{name} is not imported by the handler yet; once it is, build.bytecode = runtime adds the .pyc "
                f"of what it imports: up to {as_bytes(size)} bytes ({as_mb(size)}) if every module is"
            )
            found.append(Finding(CHECK, "notice", message))
    return found


def report_data(projection: Projection, timings: dict[str, float]) -> dict[str, Any]:
    budget = projection.budget
    comparison = budget.comparison
    assert comparison is not None
    target = projection.target
    return {
        "what_if": {**projection.request.shown(), "lock": budget.lock["path"], "lock_sha256": budget.lock["sha256"]},
        "target": {"runtime": target.runtime.name, "architecture": target.architecture, "glibc": target.glibc},
        **figures(budget),
        "current": {"source": comparison.source, "used_bytes": comparison.before_used_bytes},
        "delta_bytes": comparison.delta_bytes,
        "components": [asdict(component) for component in budget.components],
        "distributions": [
            {**asdict(row), "delta_bytes": row.delta_bytes, "measured": projection.how.get(row.name)}
            for row in comparison.distributions
        ],
        "moved_pins": [move._asdict() for move in projection.moves],
        "held_back": projection.held_back,
        "bytecode_if_imported": projection.bytecode_if_imported,
        "import_errors": {name: m.import_errors for name, m in projection.measured.items() if m.import_errors},
        "options": [option.to_dict(budget.limit_bytes) for option in projection.options],
        "timings": timings,
    }
