"""`python -m ci lock --check`: every way the committed locks can be wrong, collected in one pass.

Offline and fast first (format, the .in files, agreement between the locks), then the target's
wheels on PyPI (cached), then optionally a fresh resolve compared byte for byte.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ci.config import Config, Target
from ci.lock.bootstrap import check_bootstrap
from ci.lock.files import DirectRequirement, display_path, read_in
from ci.lock.index import SimpleIndex
from ci.lock.lockfile import LockFile, read_lock
from ci.lock.problems import (
    RELOCK,
    InconsistentLocks,
    LockProblem,
    ProvidedInLayer,
    StaleLock,
    UnhashedLine,
    UnpinnedLine,
)
from ci.lock.resolve import LockJob, compile_lock, lock_jobs
from ci.lock.wheels import check_target_wheels


@dataclass
class LockCheck:
    problems: list[LockProblem] = field(default_factory=list)
    locks: dict[str, dict[str, Any]] = field(default_factory=dict)
    target_wheels: dict[str, str] = field(default_factory=dict)
    not_checked: list[str] = field(default_factory=list)
    resolved: bool = False

    @property
    def passed(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "locks": self.locks,
            "target_wheels": self.target_wheels,
            "wheels_not_checked": self.not_checked,
            "fresh_resolve": self.resolved,
            "problems": [p.to_dict() for p in self.problems],
        }


def check_locks(
    config: Config, index: SimpleIndex | None, resolve: bool = False, uv_cache: Path | None = None
) -> LockCheck:
    """All problems of the four locks and uv's bootstrap file.

    `index` None skips the wheel check; `resolve` adds a fresh uv run.
    """
    result = LockCheck()
    jobs = lock_jobs(config)
    locks: dict[str, LockFile] = {}
    for job in jobs:
        lock = read_lock(job.output)
        locks[job.name] = lock
        display = display_path(job.output, config.root)
        env = _marker_env(job.python_version, config.target if job.name == "layer" else None)
        directs = read_in(job.in_file, job.cwd)
        result.problems += check_format(lock, display)
        provided = provided_versions(job)
        result.problems += check_against_in(
            lock, display, directs, display_path(job.in_file, config.root), env, provided, job.runtime
        )
        result.locks[job.name] = {"file": display, "pins": {name: pin.version for name, pin in lock.pins.items()}}

    layer_job = jobs[0]
    layer = locks["layer"]
    layer_display = display_path(layer_job.output, config.root)
    result.problems += check_provided(layer, layer_display, layer_job.provided)
    result.problems += check_bundled(layer, layer_display, layer_job.bundled)
    pairs = [(other, reference) for i, other in enumerate(locks) for reference in list(locks)[:i]]
    for other, reference in pairs:  # every later lock against every earlier one, the layer first
        result.problems += check_consistency(
            locks[other],
            display_path(locks[other].path, config.root),
            locks[reference],
            display_path(locks[reference].path, config.root),
        )

    result.problems += check_bootstrap(config.lock.pipeline_lock, config.lock.bootstrap_lock, config.root)

    if index is not None:
        wheels = check_target_wheels(layer, layer_display, config.target, index)
        result.problems += wheels.problems
        result.target_wheels = wheels.chosen
        result.not_checked = wheels.not_checked

    if resolve:
        stale_files = {p.file for p in result.problems if isinstance(p, StaleLock)}
        for job in jobs:
            display = display_path(job.output, config.root)
            if display not in stale_files:
                in_display = display_path(job.in_file, config.root)
                result.problems += check_fresh_resolve(job, display, config.lock.index_url, uv_cache, in_display)
        result.resolved = True
    return result


def check_format(lock: LockFile, display: str) -> list[LockProblem]:
    """Every line an exact `==` pin with hashes: what `pip install --require-hashes` demands."""
    problems: list[LockProblem] = []
    for line, text in lock.options:
        if text.startswith(("-e", "--editable")):
            problems.append(UnpinnedLine(display, line, None, f"editable install {text!r}", f"pin a release; {RELOCK}"))
    for pin in sorted(lock.pins.values(), key=lambda p: p.line):
        if pin.version is None:
            problems.append(
                UnpinnedLine(
                    display,
                    pin.line,
                    pin.name,
                    f"{pin.text!r} is not an exact `==` pin: every install could get another version",
                    f"regenerate the lock with {RELOCK} (put ranges in the .in file, never in the lock)",
                )
            )
        elif not pin.hashes:
            problems.append(
                UnhashedLine(
                    display,
                    pin.line,
                    pin.name,
                    f"{pin.text} has no --hash: `pip install --require-hashes` refuses the whole file",
                    f"regenerate the lock with {RELOCK} (it passes --generate-hashes)",
                )
            )
    return problems


def provided_versions(job: LockJob) -> dict[str, str]:
    """Canonical name -> version of each package the runtime provides and this job's lock leaves out."""
    return {
        canonicalize_name(Requirement(pin).name): str(next(iter(Requirement(pin).specifier)).version)
        for pin in job.provided
    }


def check_against_in(
    lock: LockFile,
    display: str,
    directs: list[DirectRequirement],
    in_display: str,
    env: dict[str, str],
    provided: dict[str, str] | None = None,
    runtime: str = "",
) -> list[LockProblem]:
    """The lock still answers its .in file: each direct requirement pinned, satisfied and annotated.

    `provided`: what the runtime provides (name -> version): asked for directly, such a package is left out of
    the lock and served by the runtime, which is right as long as the runtime's version satisfies the line."""
    provided = provided or {}
    problems: list[LockProblem] = []
    wanted: dict[str, set[str]] = {}  # "-r file" -> canonical names it asks for
    for direct in directs:
        wanted.setdefault(direct.source, set()).add(direct.name)
        if direct.requirement.marker is not None and not direct.requirement.marker.evaluate(env):
            continue
        where = direct.source.removeprefix("-r ")
        pin = lock.pins.get(direct.name)
        if pin is None and direct.name in provided:
            if not direct.requirement.specifier.contains(provided[direct.name], prereleases=True):
                problems.append(
                    StaleLock(
                        display,
                        None,
                        direct.name,
                        f"{where}:{direct.line} asks for {direct.requirement}, but the {runtime or 'Lambda'} runtime "
                        f"provides {direct.name}=={provided[direct.name]} and the layer leaves it out",
                        f'ship your own in the layer: [lock] bundle_runtime_packages = ["{direct.name}"] in '
                        f"pipeline.toml, then {RELOCK}; or accept the runtime's version in {where}",
                    )
                )
            continue
        if pin is None:
            problems.append(
                StaleLock(
                    display,
                    None,
                    direct.name,
                    f"{where}:{direct.line} asks for {direct.requirement} but {display} has no pin for it",
                    f"run {RELOCK} to resolve it, then commit {display}",
                )
            )
            continue
        if pin.version is not None and not direct.requirement.specifier.contains(pin.version, prereleases=True):
            problems.append(
                StaleLock(
                    display,
                    pin.line,
                    direct.name,
                    f"pinned {pin.version}, but {where}:{direct.line} asks for {direct.requirement}",
                    f"run {RELOCK} to resolve the new requirement, then commit {display}",
                )
            )
        elif direct.source not in pin.via:
            problems.append(
                StaleLock(
                    display,
                    pin.line,
                    direct.name,
                    f"{where}:{direct.line} asks for it directly, but the lock does not say `# via {direct.source}` "
                    "(it was compiled before the line was added)",
                    f"run {RELOCK}, then commit {display}",
                )
            )
    for pin in lock.pins.values():
        for via in pin.via:
            if via.startswith("-r ") and pin.name not in wanted.get(via, set()):
                problems.append(
                    StaleLock(
                        display,
                        pin.line,
                        pin.name,
                        f"annotated `# via {via}`, but {via.removeprefix('-r ')} no longer asks for it",
                        f"run {RELOCK} to drop or re-annotate it, then commit {display}",
                    )
                )
    return problems


def check_provided(layer: LockFile, display: str, provided: tuple[str, ...]) -> list[LockProblem]:
    problems: list[LockProblem] = []
    for text in provided:
        name = canonicalize_name(Requirement(text).name)
        pin = layer.pins.get(name)
        if pin is not None:
            problems.append(
                ProvidedInLayer(
                    display,
                    pin.line,
                    name,
                    f"the Lambda runtime already provides {text}; a copy in the layer comes first on sys.path "
                    "and shadows it",
                    f"run {RELOCK} (it leaves the runtime's packages out), or to ship it on purpose: [lock] "
                    f'bundle_runtime_packages = ["{name}"] in pipeline.toml, then {RELOCK}',
                )
            )
    return problems


def check_bundled(layer: LockFile, display: str, bundled: tuple[str, ...]) -> list[LockProblem]:
    """A package named to be bundled is in the layer lock: else the setting promises what the layer lacks."""
    return [
        StaleLock(
            display,
            None,
            name,
            f"[lock] bundle_runtime_packages names it, but {display} does not pin it: nothing in requirements.in "
            "needs it, or the lock predates the setting",
            f"add {name} to requirements.in if the handler imports it, or remove it from bundle_runtime_packages; "
            f"then {RELOCK}",
        )
        for name in bundled
        if name not in layer.pins
    ]


def check_consistency(lock: LockFile, display: str, reference: LockFile, reference_display: str) -> list[LockProblem]:
    """Shared packages at one version everywhere: the model is trained by what the layer runs."""
    problems: list[LockProblem] = []
    for name, pin in sorted(lock.pins.items()):
        other = reference.pins.get(name)
        if other is None or pin.version is None or other.version is None or pin.version == other.version:
            continue
        problems.append(
            InconsistentLocks(
                display,
                pin.line,
                name,
                f"pinned {pin.version} in {display} but {other.version} in {reference_display}:{other.line}: "
                "training would pickle with one version and Lambda unpickle with another",
                f"keep `-c` to the layer lock in the .in file and run {RELOCK} to recompile both "
                f"(never edit one lock alone; to move {name} in all of them: `python -m ci lock --upgrade {name}`)",
            )
        )
    return problems


def check_fresh_resolve(
    job: LockJob, display: str, index_url: str, uv_cache: Path | None, in_display: str | None = None
) -> list[LockProblem]:
    """Resolve again (existing pins preferred) and compare: any difference means the lock is stale.

    The problem points at the first pin that would change (or go), so the annotation lands on the
    hand-edited line, e.g. a Dependabot bump made in place.
    """
    with tempfile.TemporaryDirectory(prefix="lock-check-") as tmp:
        fresh = Path(tmp) / job.output.name
        shutil.copyfile(job.output, fresh)
        compile_lock(job, index_url, output=fresh, uv_cache=uv_cache)
        if fresh.read_bytes() == job.output.read_bytes():
            return []
        committed = read_lock(job.output).pins
        before = {n: p.version for n, p in committed.items()}
        after = {n: p.version for n, p in read_lock(fresh).pins.items()}
    changed = sorted(n for n in before.keys() & after.keys() if before[n] != after[n])
    removed = sorted(before.keys() - after.keys())
    changes = [f"+{n}=={after[n]}" for n in sorted(after.keys() - before.keys())]
    changes += [f"-{n}=={before[n]}" for n in removed]
    changes += [f"{n} {before[n]} -> {after[n]}" for n in changed]
    what = ", ".join(changes) if changes else "same pins, other hashes or annotations"
    named = sorted((committed[n] for n in (*changed, *removed)), key=lambda pin: pin.line)
    first = named[0] if named else None
    in_display = in_display or job.in_file.name
    move = f" (to move a package on purpose: `python -m ci lock --upgrade {first.name}`)" if first else ""
    return [
        StaleLock(
            display,
            first.line if first else None,
            first.name if first else None,
            f"{display} is not what a fresh resolve of {in_display} for its target writes ({what}): "
            "was it edited by hand or by a tool that resolves for another platform?",
            f"run {RELOCK} and commit {display}{move}",
        )
    ]


def _marker_env(python: str, target: Target | None) -> dict[str, str]:
    """Environment markers of the place a lock installs into: the Lambda target or the build host."""
    env: dict[str, str] = {key: str(value) for key, value in default_environment().items()}
    env.update(
        python_version=python,
        python_full_version=f"{python}.0",
        sys_platform="linux",
        platform_system="Linux",
        os_name="posix",
        implementation_name="cpython",
        platform_python_implementation="CPython",
    )
    if target is not None:
        env["platform_machine"] = target.machine
    return env
