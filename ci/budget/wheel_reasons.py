"""Why a requested package has no wheel for the target, and which target (or version) would take it.

"No solution found" tells nobody what to do. The index knows better: the tags the release's wheels
carry, the glibc each manylinux tag needs, which Lambda runtimes and architectures accept one of
them, and the newest version that does fit this target. Fitting is decided by ci.lock's own rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.requirements import Requirement
from packaging.tags import Tag
from packaging.version import Version

from ci.config import ARCHITECTURES, Target, load_policy
from ci.lock.check import newest_fitting, wheel_fits
from ci.lock.index import IndexFile, Project, SimpleIndex, sdist_version
from ci.lock.tags import LEGACY_ALIASES, target_tags

_MANYLINUX = re.compile(r"^manylinux_(\d+)_(\d+)_")
_LEGACY = {alias: (2, minor) for minor, alias in LEGACY_ALIASES.items()}
MAX_TAGS = 8


@dataclass(frozen=True)
class Unfit:
    """A requested package no version of which (within its specifier) the target can install."""

    name: str
    version: str | None  # the newest version the specifier allows, None if none is on the index
    message: str
    fix: str


def target_name(target: Target) -> str:
    return f"{target.runtime.name} {target.architecture} (glibc {target.glibc}, {target.runtime.python_tag})"


def glibc_needed(platform: str) -> tuple[int, int] | None:
    """(2, 28) for manylinux_2_28_x86_64 and (2, 17) for manylinux2014_x86_64; None for other platforms."""
    match = _MANYLINUX.match(platform)
    if match:
        return int(match[1]), int(match[2])
    return _LEGACY.get(platform.split("_", 1)[0])


def why_unfit(requirement: Requirement, index: SimpleIndex, target: Target) -> Unfit | None:
    """None when some version `requirement` allows has a wheel `target` loads; else what it has instead."""
    project = index.project(requirement.name)
    unfit = _judge(requirement, project, target)
    if unfit is not None and project.from_cache:  # never explain from a stale answer: ask the index again
        unfit = _judge(requirement, index.project(requirement.name, fresh=True), target)
    return unfit


def why_not_newest(name: str, resolved: str, index: SimpleIndex, target: Target) -> str | None:
    """When the resolve settled for an older release because the newest has no wheel for `target`: why."""
    project = index.project(name)
    releases = sorted({v for f, v in _versioned(project) if not f.yanked and _final(v)})
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
            None,
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
            str(version),
            f"{name} {version} publishes no wheel (sdist only; the layer installs wheels only); {alternative}",
            _fix(name, newest, []),
        )
    others = _other_targets(wheels, target)
    have = _shown_tags(wheels, target)
    message = f"{name} {version} has no wheel for {target_name(target)}: {have}{_glibc_gap(wheels, target)}"
    if others:
        message += f"; {', '.join(others)} can load it"
    return Unfit(name, str(version), f"{message}; {alternative}", _fix(name, newest, others))


def _glibc_gap(wheels: list[IndexFile], target: Target) -> str:
    """ "; manylinux_2_28 needs glibc 2.28, python3.11's is 2.26" when the machine fits but glibc does not."""
    needed = sorted(
        {
            glibc
            for f in wheels
            for t in _tags(f)
            if t.platform.endswith(target.machine) and (glibc := glibc_needed(t.platform)) is not None
        }
    )
    if not needed or needed[0] <= target.glibc_tuple:
        return ""
    lowest = needed[0]
    return (
        f"; the oldest needs glibc {lowest[0]}.{lowest[1]}: {target.runtime.name}'s glibc {target.glibc} cannot load it"
    )


def _other_targets(wheels: list[IndexFile], current: Target) -> list[str]:
    """Every other Lambda runtime and architecture (at its own glibc) one of `wheels` fits, the
    current architecture first (a new runtime is a smaller move than a new machine)."""
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
    """'its Linux wheels are tagged py3-none-manylinux_2_28_x86_64, ...': the Python and ABI the target
    runs first (cp311, abi3, py3), then its machine; Linux only when there is any."""
    accepted = target_tags(target)
    pythons = {(t.interpreter, t.abi) for t in accepted}
    tags = {t for f in files for t in _tags(f)}
    relevant = {t for t in tags if (t.interpreter, t.abi) in pythons} or tags
    linux = {t for t in relevant if "linux" in t.platform} or relevant
    shown = sorted(linux, key=lambda t: (not t.platform.endswith(target.machine), str(t)))
    more = f" (+{len(shown) - MAX_TAGS} more)" if len(shown) > MAX_TAGS else ""
    which = "Linux wheels" if any("linux" in t.platform for t in shown) else "wheels"
    return f"its {which} are tagged {', '.join(str(t) for t in shown[:MAX_TAGS])}{more}"


def _tags(file: IndexFile) -> frozenset[Tag]:
    wheel = file.wheel
    return wheel[1] if wheel is not None else frozenset()


def _versioned(project: Project) -> list[tuple[IndexFile, Version]]:
    """Every file of the project with its version (wheels and sdists); unparsable names left out."""
    found = []
    for file in project.files:
        wheel = file.wheel
        version = wheel[0] if wheel is not None else sdist_version(project.name, file.filename)
        if version is not None:
            found.append((file, version))
    return found


def _final(version: Version) -> bool:
    return not (version.is_prerelease or version.is_devrelease)
