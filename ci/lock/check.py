"""`python -m ci lock --check`: every way the committed locks can be wrong, in one pass. Offline checks first, then
the target's wheels on PyPI (the runtime's exact glibc, not uv's platform), then optionally a fresh resolve."""

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag
from packaging.utils import canonicalize_name
from packaging.version import Version

from ci.config import Config, Target
from ci.errors import CheckFailedError, PipelineError
from ci.lock.lockfile import RELOCK, LockFile, Pin, display_path, read_in, read_lock
from ci.lock.resolve import BOOTSTRAP_PACKAGE, LockChange, LockJob, bootstrap_text, compile_lock, lock_jobs
from ci.pip import IndexFile, NotCachedError, Project, SimpleIndex, target_tags

MAX_PLATFORMS_SHOWN = 12
UPGRADE_DOC = "docs/runtimes.md#upgrading-scikit-learn-for-a-newer-runtime"


@dataclass(frozen=True)
class LockProblem:
    """`file:line: package: problem` + fix, of a kind: unpinned, unhashed, stale (behind its .in file or a fresh
    resolve), no-target-wheel, hash, inconsistent (two locks, two versions), provided (shadows the runtime's)."""

    kind: str
    file: str
    line: int | None
    package: str | None
    problem: str
    fix: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.package}: {self.problem}" if self.package else f"{where}: {self.problem}"


class LockCheckError(CheckFailedError):
    """All problems of one `python -m ci lock --check` run, so a user fixes them in one go."""

    def __init__(self, problems: list[LockProblem]) -> None:
        lines = [f"{len(problems)} lock problem(s):", *(f"  - {p}\n    fix: {p.fix}" for p in problems)]
        super().__init__("\n".join(lines), f"fix the lines named above, then run {RELOCK} and commit the locks")
        self.problems = problems


@dataclass
class LockCheck:
    """The lock report's fields, in its order."""

    locks: dict[str, dict[str, Any]] = field(default_factory=dict)
    target_wheels: dict[str, str] = field(default_factory=dict)  # package -> wheel the target installs
    wheels_not_checked: list[str] = field(default_factory=list)  # offline and not in the cache
    fresh_resolve: bool = False
    problems: list[LockProblem] = field(default_factory=list)


def check_locks(
    config: Config, index: SimpleIndex | None, resolve: bool = False, uv_cache: Path | None = None
) -> LockCheck:
    """All problems of the four locks and uv's bootstrap file; `index` None skips the wheel check."""
    result = LockCheck()
    jobs = lock_jobs(config)
    locks = [read_lock(job.output, display_path(job.output, config.root)) for job in jobs]
    for job, lock in zip(jobs, locks, strict=True):
        env = _marker_env(job.python_version, config.target if job.name == "layer" else None)
        result.problems += check_format(lock)
        result.problems += check_against_in(lock, job, env)
        result.locks[job.name] = {"file": lock.display, "pins": lock.versions}
    result.problems += check_runtime_packages(locks[0], jobs[0])
    for i, lock in enumerate(locks):  # every later lock against every earlier one, the layer first
        for reference in locks[:i]:
            result.problems += check_consistency(lock, reference)
    result.problems += check_bootstrap(config.lock.pipeline_lock, config.lock.bootstrap_lock, config.root)
    if index is not None:
        check_target_wheels(locks[0], config.target, index, result)
    if resolve:
        stale_files = {p.file for p in result.problems if p.kind == "stale"}
        for job, lock in zip(jobs, locks, strict=True):
            if lock.display not in stale_files:
                result.problems += check_fresh_resolve(job, lock.display, config, uv_cache)
        result.fresh_resolve = True
    return result


def check_format(lock: LockFile) -> list[LockProblem]:
    """Every line an exact `==` pin with hashes: what `pip install --require-hashes` demands."""
    problems: list[LockProblem] = []
    for line, text in lock.options:
        if text.startswith(("-e", "--editable")):
            problem, fix = f"editable install {text!r}", f"pin a release; {RELOCK}"
            problems.append(LockProblem("unpinned", lock.display, line, None, problem, fix))
    for pin in sorted(lock.pins.values(), key=lambda p: p.line):
        if pin.version is None:
            kind = "unpinned"
            problem = f"{pin.text!r} is not an exact `==` pin: every install could get another version"
            fix = f"regenerate the lock with {RELOCK} (put ranges in the .in file, never in the lock)"
        elif not pin.hashes:
            kind = "unhashed"
            problem = f"{pin.text} has no --hash: `pip install --require-hashes` refuses the whole file"
            fix = f"regenerate the lock with {RELOCK} (it passes --generate-hashes)"
        else:
            continue
        problems.append(LockProblem(kind, lock.display, pin.line, pin.name, problem, fix))
    return problems


def check_against_in(lock: LockFile, job: LockJob, env: dict[str, str]) -> list[LockProblem]:
    """Each direct requirement pinned, satisfied and annotated; one the runtime provides must accept its version."""
    problems: list[LockProblem] = []
    wanted: dict[str, set[str]] = {}  # "-r file" -> canonical names it asks for
    for direct in read_in(job.in_file, job.cwd):
        wanted.setdefault(direct.source, set()).add(direct.name)
        if direct.requirement.marker is not None and not direct.requirement.marker.evaluate(env):
            continue
        where = direct.source.removeprefix("-r ")
        pin = lock.pins.get(direct.name)
        if pin is None and direct.name in job.provided_versions:
            if (found := job.unprovidable(direct)) is None:
                continue
            problem, fix = found
        elif pin is None:
            problem = f"{where}:{direct.line} asks for {direct.requirement} but {lock.display} has no pin for it"
            fix = f"run {RELOCK} to resolve it, then commit {lock.display}"
        elif pin.version is not None and not direct.requirement.specifier.contains(pin.version, prereleases=True):
            problem = f"pinned {pin.version}, but {where}:{direct.line} asks for {direct.requirement}"
            fix = f"run {RELOCK} to resolve the new requirement, then commit {lock.display}"
        elif direct.source not in pin.via:
            problem = (
                f"{where}:{direct.line} asks for it directly, but the lock does not say `# via {direct.source}` "
                "(it was compiled before the line was added)"
            )
            fix = f"run {RELOCK}, then commit {lock.display}"
        else:
            continue
        problems.append(LockProblem("stale", lock.display, pin.line if pin else None, direct.name, problem, fix))
    for pin in lock.pins.values():
        for via in (via for via in pin.via if via.startswith("-r ") and pin.name not in wanted.get(via, set())):
            problem = f"annotated `# via {via}`, but {via.removeprefix('-r ')} no longer asks for it"
            fix = f"run {RELOCK} to drop or re-annotate it, then commit {lock.display}"
            problems.append(LockProblem("stale", lock.display, pin.line, pin.name, problem, fix))
    return problems


def check_runtime_packages(layer: LockFile, job: LockJob) -> list[LockProblem]:
    """No package the runtime provides in the layer (it would shadow the runtime's), every bundled one in it."""
    problems = []
    for text in job.provided:
        provided = canonicalize_name(Requirement(text).name)
        if provided in layer.pins:
            problem = f"the Lambda runtime already provides {text}; a copy in the layer comes first on sys.path and "
            problem += "shadows it"
            fix = f"run {RELOCK} (it leaves the runtime's packages out), or to ship it on purpose: [lock] "
            fix += f'bundle_runtime_packages = ["{provided}"] in pipeline.toml, then {RELOCK}'
            problems.append(LockProblem("provided", layer.display, layer.pins[provided].line, provided, problem, fix))
    for name in (name for name in job.bundled if name not in layer.pins):  # else the setting promises what it lacks
        problem = f"[lock] bundle_runtime_packages names it, but {layer.display} does not pin it: nothing in "
        problem += "requirements.in needs it, or the lock predates the setting"
        fix = f"add {name} to requirements.in if the handler imports it, or remove it from bundle_runtime_packages; "
        fix += f"then {RELOCK}"
        problems.append(LockProblem("stale", layer.display, None, name, problem, fix))
    return problems


def check_consistency(lock: LockFile, reference: LockFile) -> list[LockProblem]:
    """Shared packages at one version everywhere: the model is trained by what the layer runs."""
    problems = []
    for name, pin in sorted(lock.pins.items()):
        other = reference.pins.get(name)
        if other is None or pin.version is None or other.version is None or pin.version == other.version:
            continue
        problem = f"pinned {pin.version} in {lock.display} but {other.version} in {reference.display}:{other.line}: "
        problem += "training would pickle with one version and Lambda unpickle with another"
        fix = f"keep `-c` to the layer lock in the .in file and run {RELOCK} to recompile both (never edit one lock "
        fix += f"alone; to move {name} in all of them: `python -m ci lock --upgrade {name}`)"
        problems.append(LockProblem("inconsistent", lock.display, pin.line, name, problem, fix))
    return problems


def check_fresh_resolve(job: LockJob, display: str, config: Config, uv_cache: Path | None) -> list[LockProblem]:
    """Resolve again and compare; the problem names the first pin that would change, e.g. a bump made in place."""
    with tempfile.TemporaryDirectory(prefix="lock-check-") as tmp:
        fresh = Path(tmp) / job.output.name
        shutil.copyfile(job.output, fresh)
        compile_lock(job, config.lock.index_url, output=fresh, uv_cache=uv_cache)
        if fresh.read_bytes() == job.output.read_bytes():
            return []
        committed = read_lock(job.output).pins
        before = {n: p.version for n, p in committed.items()}
        after = read_lock(fresh).versions
    what = LockChange.between(display, before, after, True).pins() or "same pins, other hashes or annotations"
    moved = [pin for name, pin in committed.items() if name not in after or after[name] != before[name]]
    first = min(moved, key=lambda pin: pin.line, default=None)
    move = f" (to move a package on purpose: `python -m ci lock --upgrade {first.name}`)" if first else ""
    in_display = display_path(job.in_file, config.root)
    problem = f"{display} is not what a fresh resolve of {in_display} for its target writes ({what}): "
    problem += "was it edited by hand or by a tool that resolves for another platform?"
    fix = f"run {RELOCK} and commit {display}{move}"
    return [LockProblem("stale", display, first.line if first else None, first.name if first else None, problem, fix)]


def _marker_env(python: str, target: Target | None) -> dict[str, str]:
    """Environment markers of the place a lock installs into; Marker.evaluate takes the rest from the build host."""
    env = {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }
    if target is not None:
        env["platform_machine"] = target.machine
    return env


def check_target_wheels(lock: LockFile, target: Target, index: SimpleIndex, result: LockCheck) -> None:
    """Adds to `result` each pin's problems, the wheel the target installs, or that it went unchecked (offline)."""
    tags = target_tags(target)
    for pin in sorted(lock.pins.values(), key=lambda p: p.line):
        if pin.version is None:
            continue  # reported as unpinned by the format check
        try:
            project = index.project(pin.name)
        except NotCachedError:
            result.wheels_not_checked.append(pin.name)
            continue
        problems, chosen = _judge(pin, project, target, tags)
        if problems and project.from_cache:  # never fail on an old cache entry: ask the index again
            problems, chosen = _judge(pin, index.project(pin.name, fresh=True), target, tags)
        for kind, problem, fix in problems:
            result.problems.append(LockProblem(kind, lock.display, pin.line, pin.name, problem, fix))
        if chosen is not None:
            result.target_wheels[pin.name] = chosen


def _judge(pin: Pin, project: Project, target: Target, tags: set[Tag]) -> tuple[list[tuple[str, str, str]], str | None]:
    """([(kind, problem, fix)], the wheel the target installs)."""
    assert pin.version is not None
    files = project.files_of(pin.version)
    if not files:
        return [("no-target-wheel", f"{pin.name}=={pin.version} is not on the index", f"rerun {RELOCK}")], None
    fitting = [f for f in files if wheel_fits(f, target, tags)]
    if not fitting:
        return [("no-target-wheel", *_no_wheel(pin, project, files, target, tags))], None
    locked = pin.sha256
    missing = [f.filename for f in fitting if f.sha256 and f.sha256 not in locked]
    unknown = sorted(locked - {f.sha256 for f in files if f.sha256})
    fix = f"regenerate the hashes with {RELOCK}"
    problems: list[tuple[str, str, str]] = []
    if missing and locked:
        problem = f"the lock lacks the sha256 of {', '.join(missing)}, which the target installs: "
        problems.append(("hash", problem + "`pip install --require-hashes` would refuse it", fix))
    if unknown:
        problem = f"{len(unknown)} hash(es) match no file of {pin.name} {pin.version} on the index "
        problem += f"(first: sha256:{unknown[0][:16]}...)"
        problems.append(("hash", problem, f"{fix} (and find out who edited them)"))
    best = min(fitting, key=lambda f: _priority(f, tags, target))
    return problems, best.filename


def wheel_fits(file: IndexFile, target: Target, tags: set[Tag]) -> bool:
    wheel = file.wheel
    if wheel is None or not (wheel[1] & tags):
        return False
    return not file.requires_python or python_allows(file.requires_python, Version(target.runtime.python))


def python_allows(requires_python: str, python: Version) -> bool:
    """A requires-python that packaging cannot parse excludes nothing (pip ignores it too)."""
    try:
        return python in SpecifierSet(requires_python)
    except InvalidSpecifier:
        return True


def _priority(file: IndexFile, tags: set[Tag], target: Target) -> tuple[int, str]:
    """Prefer what pip prefers: the interpreter-specific ABI over abi3 over pure Python."""
    wheel = file.wheel
    assert wheel is not None
    matched = wheel[1] & tags
    rank = min(0 if t.abi == target.runtime.python_tag else 1 if t.abi == "abi3" else 2 for t in matched)
    return rank, file.filename


def _no_wheel(pin: Pin, project: Project, files: list[IndexFile], target: Target, tags: set[Tag]) -> tuple[str, str]:
    all_tags = {tag for file in files if (wheel := file.wheel) is not None for tag in wheel[1]}
    if all_tags:
        cp_tags = {tag for tag in all_tags if tag.interpreter == target.runtime.python_tag}
        platforms = sorted({tag.platform for tag in cp_tags or all_tags})
        more = f" (+{len(platforms) - MAX_PLATFORMS_SHOWN} more)" if len(platforms) > MAX_PLATFORMS_SHOWN else ""
        which = f"{target.runtime.python_tag} wheels" if cp_tags else "wheels"
        have = f"its {which} are tagged {', '.join(platforms[:MAX_PLATFORMS_SHOWN])}{more}"
    else:
        have = "it publishes no wheels at all (sdist only; the layer installs wheels only)"
    newest = newest_fitting(project, target, tags)
    runtime = f"{target.runtime.name} {target.architecture} (glibc {target.glibc}, {target.runtime.python_tag})"
    if newest is not None:
        hint = f"newest version that fits: {newest}"
        fix = f"pin {pin.name}=={newest} (or a range that excludes {pin.version}) in requirements.in, then {RELOCK}"
    else:
        hint = "no version of it fits the target"
        fix = f"remove {pin.name} from requirements.in or change target.runtime, then {RELOCK}"
    return f"{pin.name}=={pin.version} has no wheel for {runtime}: {have}; {hint}", fix


def final_versions(project: Project, target: Target | None = None, tags: set[Tag] | None = None) -> set[Version]:
    """Final releases with a non-yanked wheel: any wheel, or with `target` one it can load."""
    return {
        wheel[0]
        for file in project.files
        if (wheel := file.wheel) is not None
        and not (file.yanked or wheel[0].is_prerelease or wheel[0].is_devrelease)
        and (target is None or wheel_fits(file, target, tags or set()))
    }


def newest_fitting(project: Project, target: Target, tags: set[Tag]) -> Version | None:
    return max(final_versions(project, target, tags), default=None)


def _unfit(project: Project, version: Version, config: Config, tags: set[Tag]) -> bool:
    """True when `version` has files but none the target can install (absent is the resolver's message)."""
    files = project.files_of(str(version))
    return bool(files) and not any(wheel_fits(file, config.target, tags) for file in files)


def check_direct_pins(config: Config, index: SimpleIndex, moving: tuple[str, ...] = ()) -> None:
    """Refuse, in one error, every `==` pin in requirements.in without a target wheel, except `moving` (upgraded)."""
    released = {canonicalize_name(name) for name in moving}
    target = config.target
    tags = target_tags(target)
    in_file = config.lock.requirements_in
    unfit: list[tuple[str, str, str]] = []  # (name, what is wrong, what to pin instead)
    for direct in read_in(in_file, in_file.parent):
        pinned = [spec.version for spec in direct.requirement.specifier if spec.operator in ("==", "===")]
        if len(pinned) != 1 or "*" in pinned[0] or direct.name in released:
            continue
        try:
            project = index.project(direct.name)
        except NotCachedError:
            continue  # offline and never fetched: the wheel check says so
        version = Version(pinned[0])
        if _unfit(project, version, config, tags) and project.from_cache:
            project = index.project(direct.name, fresh=True)  # never refuse on an old cache entry
        if not _unfit(project, version, config, tags):
            continue
        oldest = min((v for v in final_versions(project, target, tags) if v > version), default=None)
        if oldest is None:
            found, upgrade = f"no {direct.name} release has one", f"drop {direct.name} or choose another runtime"
        else:
            found = f"the oldest {direct.name} release with one is {oldest}"
            upgrade = f"{direct.name}=={oldest} (or newer)"
        problem = (
            f"{display_path(in_file, config.root)}:{direct.line}: {direct.name}=={version} has no "
            f"{target.runtime.python_tag} manylinux wheel for {target.runtime.name} {target.architecture} "
            f"(glibc {target.glibc}); {found}"
        )
        unfit.append((direct.name, problem, upgrade))
    if unfit:
        names, problems, upgrades = zip(*unfit, strict=True)
        raise PipelineError(
            "; ".join(problems),
            f"pin {', '.join(upgrades)} in requirements.in and training/requirements.in together (or let "
            f"`python -m ci lock --upgrade {' '.join(names)}` repin both), retrain (`make train`) and let "
            f"`python -m ci pins` prove the match ({UPGRADE_DOC}); or keep the previous [target] runtime",
        )


def check_bootstrap(pipeline_lock: Path, bootstrap_lock: Path, root: Path) -> list[LockProblem]:
    """A bootstrap file that installs another uv (or other bytes) than the pipeline lock is stale."""
    shown = display_path(bootstrap_lock, root)
    exists = bootstrap_lock.is_file()
    if exists and bootstrap_lock.read_text() == bootstrap_text(pipeline_lock, root):
        return []
    pin = read_lock(bootstrap_lock).pins.get(BOOTSTRAP_PACKAGE) if exists else None
    problem = f"{shown} {'differs from' if exists else 'is missing'} the uv pin and hashes of "
    problem += display_path(pipeline_lock, root)
    fix = f"run {RELOCK} (it writes {shown} from the pipeline lock) and commit it"
    return [LockProblem("stale", shown, pin.line if pin else None, BOOTSTRAP_PACKAGE, problem, fix)]
