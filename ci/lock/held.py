"""Why a locked package is not at its newest release: the reason a re-lock reports beside old -> new.

Told apart by facts: an exact pin, the target (no fitting wheel), or another package's requirement that uv
names; anything else is "held back" with no reason claimed.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import replace
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from ci.config import Target
from ci.errors import PipelineError
from ci.lock.files import DirectRequirement
from ci.lock.index import Project
from ci.lock.resolve import LockJob, compile_lock
from ci.lock.tags import target_tags
from ci.lock.wheels import newest_fitting

UNKNOWN = "held back (reason unknown)"
_UV_PLATFORM_GLIBC = re.compile(r"manylinux_(\d+)_(\d+)$")
_DEPENDS = re.compile(r"Because (?P<parent>[A-Za-z0-9][\w.-]*)==(?P<version>[^\s,]+) depends on (?P<req>\S+?)[,.]?\s")


def newest_release(project: Project) -> Version | None:
    """The newest final, non-yanked release with any file on the index."""
    versions = set()
    for file in project.files:
        wheel = file.wheel
        if wheel is not None and not file.yanked and not (wheel[0].is_prerelease or wheel[0].is_devrelease):
            versions.add(wheel[0])
    return max(versions, default=None)


def resolve_target(target: Target) -> Target:
    """The target as uv resolves for it: the glibc of its --python-platform (e.g. manylinux_2_17)."""
    match = _UV_PLATFORM_GLIBC.search(target.uv_platform)
    return replace(target, glibc=f"{match.group(1)}.{match.group(2)}") if match else target


def pinned_in(name: str, directs: list[DirectRequirement], in_display: str) -> str | None:
    """`requirements.in:3 pins scikit-learn==1.3.2` when an .in file pins `name` exactly."""
    for direct in directs:
        ops = {spec.operator for spec in direct.requirement.specifier}
        if direct.name == name and ops & {"==", "==="}:
            return f"{in_display}:{direct.line} pins {direct.requirement}"
    return None


def target_reason(name: str, project: Project, newest: Version, target: Target) -> str:
    """Why `newest` cannot be resolved for the target: requires-python, or no wheel for its platform."""
    files = [f for f in project.files if f.wheel is not None and f.wheel[0] == newest and not f.yanked]
    python = Version(target.runtime.python)
    excluded = [f.requires_python for f in files if f.requires_python and not _allows(f.requires_python, python)]
    if files and len(excluded) == len(files):
        return f"requires-python: {name} {newest} requires Python {excluded[0]}, the target runs {python}"
    resolved = resolve_target(target)
    reason = (
        f"target wheels: {name} {newest} has no wheel for {target.runtime.name} {target.architecture} "
        f"as the lock is resolved ({target.uv_platform})"
    )
    exact = newest_fitting(project, target, target_tags(target))
    loose = newest_fitting(project, resolved, target_tags(resolved))
    if exact is not None and (loose is None or exact > loose):
        reason += f"; {exact} has a wheel glibc {target.glibc} loads, but not for {resolved.glibc}"
    return reason


def _allows(requires_python: str, python: Version) -> bool:
    try:
        return python in SpecifierSet(requires_python)
    except InvalidSpecifier:
        return True


def dependency_reason(name: str, wanted: Version, job: LockJob, index_url: str, uv_cache: Path | None) -> str:
    """Ask uv to resolve `name>=wanted` with the same inputs; its explanation names who holds it back."""
    with tempfile.TemporaryDirectory(prefix="lock-held-") as tmp:
        extra = Path(tmp) / "wanted.txt"
        extra.write_text(f"{name}>={wanted}\n")
        probe = replace(job, inputs=(*job.inputs, str(extra)))
        try:
            compile_lock(probe, index_url, output=Path(tmp) / "probe.txt", uv_cache=uv_cache)
        except PipelineError as exc:
            return explain_conflict(name, wanted, exc.problem) or UNKNOWN
    return f"{UNKNOWN}: uv resolves {name}>={wanted} too (rerun with --upgrade {name})"


def explain_conflict(name: str, wanted: Version, uv_message: str) -> str | None:
    """`numpy<2.0 by scikit-learn 1.3.2` from uv's "Because scikit-learn==1.3.2 depends on numpy>=1.17.3,<2.0"."""
    text = " ".join(uv_message.split()) + " "
    for match in _DEPENDS.finditer(text):
        try:
            requirement = Requirement(match.group("req"))
        except InvalidRequirement:
            continue
        if canonicalize_name(requirement.name) != name:
            continue
        blocking = [str(s) for s in requirement.specifier if not s.contains(wanted, prereleases=True)]
        shown = f"{name}{','.join(sorted(blocking)) or requirement.specifier}"
        return f"{shown} by {match.group('parent')} {match.group('version')}"
    return None


def held_reason(
    name: str,
    version: str,
    project: Project,
    target: Target,
    pin: str | None,
    job: LockJob,
    index_url: str,
    uv_cache: Path | None,
) -> tuple[str | None, str | None]:
    """(newest release, why `version` is not it) — (newest, None) when it is the newest."""
    newest = newest_release(project)
    if newest is None or newest <= Version(version):
        return (str(newest) if newest else None), None
    if pin is not None:
        return str(newest), f"{pin} (move it on purpose: `python -m ci lock --upgrade {name}`)"
    resolved = resolve_target(target)
    installable = newest_fitting(project, resolved, target_tags(resolved))
    if installable is None or installable <= Version(version):
        return str(newest), target_reason(name, project, newest, target)
    return str(newest), dependency_reason(name, installable, job, index_url, uv_cache)
