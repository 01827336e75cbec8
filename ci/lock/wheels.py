"""Does every pin of the layer lock have a wheel the Lambda target can install, with its hash locked?

uv resolves for a conservative platform (manylinux_2_17); this check uses the runtime's exact
glibc and names, for a pin with no fitting wheel, the platforms its wheels do have and the
newest version that fits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag
from packaging.version import Version

from ci.config import Target
from ci.lock.index import IndexFile, NotCachedError, Project, SimpleIndex
from ci.lock.lockfile import LockFile, Pin
from ci.lock.problems import RELOCK, HashMismatch, LockProblem, NoTargetWheel
from ci.lock.tags import target_tags

MAX_PLATFORMS_SHOWN = 12


@dataclass
class WheelCheck:
    problems: list[LockProblem] = field(default_factory=list)
    chosen: dict[str, str] = field(default_factory=dict)  # package -> wheel the target installs
    not_checked: list[str] = field(default_factory=list)  # offline and not in the cache


def check_target_wheels(lock: LockFile, display: str, target: Target, index: SimpleIndex) -> WheelCheck:
    tags = target_tags(target)
    result = WheelCheck()
    for pin in sorted(lock.pins.values(), key=lambda p: p.line):
        if pin.version is None:
            continue  # reported as unpinned by the format check
        try:
            project = index.project(pin.name)
        except NotCachedError:
            result.not_checked.append(pin.name)
            continue
        problems, chosen = _judge(pin, project, display, target, tags)
        if problems and project.from_cache:  # never fail on an old cache entry: ask the index again
            project = index.project(pin.name, fresh=True)
            problems, chosen = _judge(pin, project, display, target, tags)
        result.problems += problems
        if chosen is not None:
            result.chosen[pin.name] = chosen
    return result


def _judge(
    pin: Pin, project: Project, display: str, target: Target, tags: set[Tag]
) -> tuple[list[LockProblem], str | None]:
    assert pin.version is not None
    files = project.files_of(pin.version)
    if not files:
        return [
            NoTargetWheel(
                display, pin.line, pin.name, f"{pin.name}=={pin.version} is not on the index", f"rerun {RELOCK}"
            )
        ], None
    fitting = [f for f in files if wheel_fits(f, target, tags)]
    if not fitting:
        return [_no_wheel(pin, project, files, display, target, tags)], None
    locked = pin.sha256
    problems: list[LockProblem] = []
    missing = [f.filename for f in fitting if f.sha256 and f.sha256 not in locked]
    if missing and locked:
        problems.append(
            HashMismatch(
                display,
                pin.line,
                pin.name,
                f"the lock lacks the sha256 of {', '.join(missing)}, which the target installs: "
                "`pip install --require-hashes` would refuse it",
                f"regenerate the hashes with {RELOCK}",
            )
        )
    published = {f.sha256 for f in files if f.sha256}
    unknown = sorted(locked - published)
    if unknown:
        problems.append(
            HashMismatch(
                display,
                pin.line,
                pin.name,
                f"{len(unknown)} hash(es) match no file of {pin.name} {pin.version} on the index "
                f"(first: sha256:{unknown[0][:16]}...)",
                f"regenerate the hashes with {RELOCK} (and find out who edited them)",
            )
        )
    best = min(fitting, key=lambda f: _priority(f, tags, target))
    return problems, best.filename


def wheel_fits(file: IndexFile, target: Target, tags: set[Tag]) -> bool:
    wheel = file.wheel
    if wheel is None or not (wheel[1] & tags):
        return False
    if file.requires_python:
        try:
            return Version(target.runtime.python) in SpecifierSet(file.requires_python)
        except InvalidSpecifier:
            return True
    return True


def _priority(file: IndexFile, tags: set[Tag], target: Target) -> tuple[int, str]:
    """Prefer what pip prefers: the interpreter-specific ABI over abi3 over pure Python."""
    wheel = file.wheel
    assert wheel is not None
    matched = wheel[1] & tags
    rank = min(0 if t.abi == target.runtime.python_tag else 1 if t.abi == "abi3" else 2 for t in matched)
    return rank, file.filename


def _no_wheel(
    pin: Pin, project: Project, files: list[IndexFile], display: str, target: Target, tags: set[Tag]
) -> NoTargetWheel:
    wheels = [f for f in files if f.wheel is not None]
    if wheels:
        assert all(f.wheel is not None for f in wheels)
        cp_tags = {t for f in wheels for t in f.wheel[1] if t.interpreter == target.runtime.python_tag}  # type: ignore[index]
        shown = cp_tags or {t for f in wheels for t in f.wheel[1]}  # type: ignore[index]
        platforms = sorted({t.platform for t in shown})
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
    return NoTargetWheel(
        display, pin.line, pin.name, f"{pin.name}=={pin.version} has no wheel for {runtime}: {have}; {hint}", fix
    )


def newest_fitting(project: Project, target: Target, tags: set[Tag]) -> Version | None:
    """The newest final release with a non-yanked wheel the target can load."""
    versions = set()
    for file in project.files:
        wheel = file.wheel
        if wheel is None or file.yanked or wheel[0].is_prerelease or wheel[0].is_devrelease:
            continue
        if wheel_fits(file, target, tags):
            versions.add(wheel[0])
    return max(versions, default=None)
