"""`python -m ci lock --upgrade [PACKAGE ...]`: move the four locks forward together and say what held each back.
Unlike Dependabot (one lock, its own host): all four, exact pins only when named, every file restored on failure."""

import copy
import difflib
import re
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from ci.config import Config, Target
from ci.errors import PipelineError
from ci.lock.check import final_versions, newest_fitting, python_allows
from ci.lock.lockfile import DirectRequirement, display_path, logical_lines, read_in, read_lock
from ci.lock.resolve import LockChange, LockJob, compile_all, compile_lock, lock_jobs
from ci.pip import Project, SimpleIndex, target_tags

UNKNOWN = "held back (reason unknown)"
_UV_PLATFORM_GLIBC = re.compile(r"manylinux_(\d+)_(\d+)$")
_DEPENDS = re.compile(r"Because (?P<parent>[A-Za-z0-9][\w.-]*)==(?P<version>[^\s,]+) depends on (?P<req>\S+?)[,.]?\s")


@dataclass(frozen=True)
class PackageMove:
    name: str
    old: str | None
    new: str | None
    newest: str | None = None
    held_by: str | None = None

    @property
    def status(self) -> str:
        if self.old is None:
            return "added"
        if self.new is None:
            return "removed"
        if self.old != self.new:
            return "upgraded" if Version(self.new) > Version(self.old) else "downgraded"
        return "held" if self.held_by else "unchanged"

    def describe(self) -> str:
        moved = f"{self.name} {self.old} -> {self.new}" if self.old != self.new else f"{self.name} {self.new}"
        by_status = {"added": f"{self.name} +{self.new}", "removed": f"{self.name} -{self.old} (no longer needed)"}
        text = by_status.get(self.status, moved)
        if self.held_by:
            text += f" (newest {self.newest}; held at {self.new}: {self.held_by})"
        return text


@dataclass
class UpgradeResult:
    asked: tuple[str, ...]  # () = everything
    moves: list[PackageMove] = field(default_factory=list)
    changes: list[LockChange] = field(default_factory=list)
    repinned: dict[str, str] = field(default_factory=dict)  # "requirements.in:3" -> new exact pin

    def to_dict(self) -> dict[str, Any]:
        return {
            "asked": list(self.asked) or "all",
            "packages": [{**asdict(move), "status": move.status} for move in self.moves],
            "locks": [asdict(change) for change in self.changes],
            "repinned": self.repinned,
        }


def upgrade_locks(
    config: Config, packages: tuple[str, ...], index: SimpleIndex, uv_cache: Path | None = None
) -> UpgradeResult:
    """Re-resolve all locks allowing upgrades; restore every file if anything fails."""
    jobs = lock_jobs(config)
    asked = tuple(dict.fromkeys(canonicalize_name(name) for name in packages))
    directs = {job.name: read_in(job.in_file, job.cwd) for job in jobs}
    known = {d.name for ds in directs.values() for d in ds}
    known |= {name for job in jobs if job.output.is_file() for name in read_lock(job.output).pins}
    for package in (package for package in asked if package not in known):
        close = difflib.get_close_matches(package, sorted(known), n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise PipelineError(
            f"--upgrade {package}: no .in file or lock has {package}",
            f"{hint}name a locked package, or add {package} to requirements.in and run `python -m ci lock`",
        )
    released = [d for ds in directs.values() for d in ds if d.name in asked and _exact(d)]
    touched = {job.output for job in jobs} | {d.file for d in released} | {config.lock.bootstrap_lock}
    saved = {path: path.read_bytes() for path in touched if path.is_file()}
    before = read_lock(jobs[0].output).versions
    result = UpgradeResult(asked)
    try:
        _rewrite(released, {d.name: _pinned_text(d, None) for d in released})
        result.changes = compile_all(config, upgrade=not asked, upgrade_packages=asked, uv_cache=uv_cache)
        # every version after the compile; the layer's last, so it wins (the host locks are constrained to it)
        locked = {n: v for job in reversed(jobs) for n, v in read_lock(job.output).versions.items() if v}
        new_pins = {d.name: _pinned_text(d, locked[d.name]) for d in released}
        _rewrite(released, new_pins)
        result.repinned = {f"{display_path(d.file, config.root)}:{d.line}": new_pins[d.name] for d in released}
    except BaseException:
        for path, content in saved.items():
            path.write_bytes(content)
        raise
    after = read_lock(jobs[0].output).versions
    layer_in = display_path(jobs[0].in_file, config.root)
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        newest = held = None
        if new is not None and (not asked or name in asked):
            exact = (d for d in directs["layer"] if d.name == name and _exact(d) and name not in asked)
            pin = next((f"{layer_in}:{d.line} pins {d.requirement}" for d in exact), None)
            newest, held = held_reason(name, new, index.project(name, fresh=True), pin, jobs[0], config, uv_cache)
        result.moves.append(PackageMove(name, old, new, newest, held))
    return result


def _exact(direct: DirectRequirement) -> bool:
    return any(spec.operator in ("==", "===") for spec in direct.requirement.specifier)


def _pinned_text(direct: DirectRequirement, version: str | None) -> str:
    """The requirement's line with `==version` (or no version at all), its extras and marker kept."""
    requirement = copy.copy(direct.requirement)
    requirement.specifier = SpecifierSet(f"=={version}" if version else "")
    return str(requirement)


def _rewrite(directs: list[DirectRequirement], texts: dict[str, str]) -> None:
    """Replace each direct requirement's line with its new text, keeping a trailing comment."""
    for path in {d.file for d in directs}:
        lines = path.read_text().splitlines(keepends=True)
        starts = {start for start, _ in logical_lines("".join(lines))}
        for direct in (d for d in directs if d.file == path):
            if direct.line not in starts or lines[direct.line - 1].rstrip().endswith("\\"):
                raise PipelineError(
                    f"{path}:{direct.line}: cannot rewrite a requirement continued over several lines",
                    f"put `{direct.requirement}` on one line, then rerun",
                )
            old = lines[direct.line - 1]
            comment = old[old.index(" #") :].rstrip("\n") if " #" in old else ""
            lines[direct.line - 1] = f"{texts[direct.name]}{comment}\n"
        path.write_text("".join(lines))


def resolve_target(target: Target) -> Target:
    """The target as uv resolves for it: the glibc of its --python-platform (e.g. manylinux_2_17)."""
    match = _UV_PLATFORM_GLIBC.search(target.uv_platform)
    return replace(target, glibc=f"{match.group(1)}.{match.group(2)}") if match else target


def target_reason(name: str, project: Project, newest: Version, target: Target, loose: Version | None) -> str:
    """Why `newest` cannot be resolved for the target (`loose`: the newest it can): requires-python, or no wheel."""
    files = [f for f in project.files if f.wheel is not None and f.wheel[0] == newest and not f.yanked]
    python = Version(target.runtime.python)
    excluded = [f.requires_python for f in files if f.requires_python and not python_allows(f.requires_python, python)]
    if files and len(excluded) == len(files):
        return f"requires-python: {name} {newest} requires Python {excluded[0]}, the target runs {python}"
    reason = (
        f"target wheels: {name} {newest} has no wheel for {target.runtime.name} {target.architecture} "
        f"as the lock is resolved ({target.uv_platform})"
    )
    exact = newest_fitting(project, target, target_tags(target))
    if exact is not None and (loose is None or exact > loose):
        reason += f"; {exact} has a wheel glibc {target.glibc} loads, but not for {resolve_target(target).glibc}"
    return reason


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
    name: str, version: str, project: Project, pin: str | None, job: LockJob, config: Config, uv_cache: Path | None
) -> tuple[str | None, str | None]:
    """(newest release, why `version` is not it) — (newest, None) when it is the newest."""
    newest = max(final_versions(project), default=None)
    if newest is None or newest <= Version(version):
        return (str(newest) if newest else None), None
    if pin is not None:
        return str(newest), f"{pin} (move it on purpose: `python -m ci lock --upgrade {name}`)"
    resolved = resolve_target(config.target)
    installable = newest_fitting(project, resolved, target_tags(resolved))
    if installable is None or installable <= Version(version):
        return str(newest), target_reason(name, project, newest, config.target, installable)
    return str(newest), dependency_reason(name, installable, job, config.lock.index_url, uv_cache)
