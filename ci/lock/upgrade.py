"""`python -m ci lock --upgrade [PACKAGE ...]`: move the four locks forward together, for the target.

Dependabot edits one lock for its own host, so its PRs fail `lock --check`; this re-resolves all four, moves
exact pins only when named, and restores every file on failure.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import Version

from ci.config import Config
from ci.errors import PipelineError
from ci.lock.files import DirectRequirement, display_path, read_in
from ci.lock.held import held_reason, pinned_in
from ci.lock.index import SimpleIndex
from ci.lock.lockfile import logical_lines, read_lock
from ci.lock.resolve import lock_jobs
from ci.lock.run import LockChange, compile_all


@dataclass(frozen=True)
class PackageMove:
    """One layer package: its version before and after, the newest release, and what held it back."""

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
        if self.status == "added":
            text = f"{self.name} +{self.new}"
        elif self.status == "removed":
            text = f"{self.name} -{self.old} (no longer needed)"
        elif self.old != self.new:
            text = f"{self.name} {self.old} -> {self.new}"
        else:
            text = f"{self.name} {self.new}"
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
    _refuse_unknown(asked, directs, [job.output for job in jobs])
    released = [d for ds in directs.values() for d in ds if d.name in asked and _exact(d)]
    touched = {job.output for job in jobs} | {d.file for d in released} | {config.lock.bootstrap_lock}
    saved = {path: path.read_bytes() for path in touched if path.is_file()}
    before = {n: p.version for n, p in read_lock(jobs[0].output).pins.items()}
    result = UpgradeResult(asked)
    try:
        _rewrite(released, {d.name: _without_version(d) for d in released})
        result.changes = compile_all(config, upgrade=not asked, upgrade_packages=asked, uv_cache=uv_cache)
        locked = _locked_versions(config)
        new_pins = {d.name: _with_version(d, locked[d.name]) for d in released}
        _rewrite(released, new_pins)
        result.repinned = {f"{display_path(d.file, config.root)}:{d.line}": new_pins[d.name] for d in released}
    except BaseException:
        for path, content in saved.items():
            path.write_bytes(content)
        raise
    after = {n: p.version for n, p in read_lock(jobs[0].output).pins.items()}
    layer_in = display_path(jobs[0].in_file, config.root)
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        newest = held = None
        if new is not None and (not asked or name in asked):
            pin = None if name in asked else pinned_in(name, directs["layer"], layer_in)
            project = index.project(name, fresh=True)
            newest, held = held_reason(name, new, project, config.target, pin, jobs[0], config.lock.index_url, uv_cache)
        result.moves.append(PackageMove(name, old, new, newest, held))
    return result


def _refuse_unknown(asked: tuple[str, ...], directs: dict[str, list[DirectRequirement]], locks: list[Path]) -> None:
    known = {d.name for ds in directs.values() for d in ds}
    for lock in locks:
        known |= set(read_lock(lock).pins) if lock.is_file() else set()
    for name in asked:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise PipelineError(
                f"--upgrade {name}: no .in file or lock has {name}",
                f"{hint}name a locked package, or add {name} to requirements.in and run `python -m ci lock`",
            )


def _exact(direct: DirectRequirement) -> bool:
    return any(spec.operator in ("==", "===") for spec in direct.requirement.specifier)


def _without_version(direct: DirectRequirement) -> str:
    requirement = direct.requirement
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    marker = f"; {requirement.marker}" if requirement.marker else ""
    return f"{requirement.name}{extras}{marker}"


def _with_version(direct: DirectRequirement, version: str) -> str:
    requirement = direct.requirement
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    marker = f"; {requirement.marker}" if requirement.marker else ""
    return f"{requirement.name}{extras}=={version}{marker}"


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


def _locked_versions(config: Config) -> dict[str, str]:
    """Every package's version after the compile, layer first (the host locks are constrained to it)."""
    versions: dict[str, str] = {}
    for job in reversed(lock_jobs(config)):
        versions.update({n: p.version for n, p in read_lock(job.output).pins.items() if p.version})
    return versions
