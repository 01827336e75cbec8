"""The commit a deploy comes from, recorded on its version, so a rerun of an old workflow never moves
the alias backwards (`ci rollback` and --allow-older excepted)."""

from __future__ import annotations

import logging
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ci.errors import PipelineError

logger = logging.getLogger(__name__)

COMMIT = re.compile(r"\bcommit ([0-9a-f]{40})( dirty)?")
UNKNOWN = "unknown"
OVERRIDE = "--allow-older"


@dataclass(frozen=True)
class Provenance:
    commit: str  # 40 hex digits, or "unknown"
    dirty: bool | None  # None when the tree deployed from is not this checkout's HEAD
    source: str  # --commit | GITHUB_SHA | git HEAD | none

    def describe(self) -> str:
        return f"commit {self.commit}" + (" dirty" if self.dirty else "")


def git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False, timeout=60)


def resolve(repo: Path, ref: str) -> str | None:
    """The full commit id `ref` names in `repo`, or None if this clone does not have it."""
    try:
        found = git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except (OSError, subprocess.SubprocessError):
        return None
    return found.stdout.strip() if found.returncode == 0 else None


def detect(repo: Path, commit: str | None = None, environ: Mapping[str, str] = os.environ) -> Provenance:
    """--commit, else GITHUB_SHA, else `git rev-parse HEAD`; dirty is known only when that is HEAD."""
    given, source = (commit, "--commit") if commit else (environ.get("GITHUB_SHA"), "GITHUB_SHA")
    head = resolve(repo, "HEAD")
    if not given:
        given, source = head, "git HEAD"
    if not given:
        return Provenance(UNKNOWN, None, "none")
    full = resolve(repo, given) or given.lower()
    if not re.fullmatch(r"[0-9a-f]{40}", full):
        raise PipelineError(
            f"{source} {given!r} is not a commit this clone has, nor a full 40-digit commit id",
            "pass --commit with a full commit id (or fetch that commit first)",
        )
    dirty = None
    if full == head:
        status = git(repo, "status", "--porcelain", "--untracked-files=no")
        dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return Provenance(full, dirty, source)


def recorded(description: str) -> Provenance | None:
    """The provenance a published version's description records, if it records one."""
    match = COMMIT.search(description)
    if match is None:
        return None
    return Provenance(match.group(1), bool(match.group(2)), "version description")


def version_description(ours: Provenance, function: str, layer: str, model: str) -> str:
    """The commit, then digest prefixes (the full ones are CodeSha256s and MODEL_SHA256) in 256 characters."""
    return f"{ours.describe()} function {function[:16]} layer {layer[:16]} model {model[:16]}"[:256]


def check_order(
    repo: Path,
    ours: Provenance,
    live: Provenance | None,
    live_version: str,
    allow_older: bool,
) -> None:
    """Refuse to replace the live version with one built from an older commit (or one we cannot place)."""
    if live is None or live.commit == ours.commit:
        return
    if UNKNOWN in (live.commit, ours.commit):
        problem = (
            f"the commit of this deploy ({ours.commit}) or of live version {live_version} ({live.commit}) is unknown"
        )
    elif missing := [commit for commit in (live.commit, ours.commit) if resolve(repo, commit) is None]:
        problem = (
            f"live version {live_version} is commit {live.commit[:12]}, this deploy is {ours.commit[:12]}, and "
            f"this clone does not have {missing[0]}, so which is newer cannot be told"
        )
    elif ancestor(repo, ours.commit, live.commit):
        problem = (
            f"commit {ours.commit[:12]} is older than commit {live.commit[:12]} of live version {live_version} "
            "(an ancestor of it): deploying it would move production backwards"
        )
    elif ancestor(repo, live.commit, ours.commit):
        return
    elif shallow(repo):  # history is cut: "not an ancestor" may only mean "not fetched"
        problem = (
            f"this clone is shallow, so whether commit {ours.commit[:12]} is newer than commit {live.commit[:12]} "
            f"of live version {live_version} cannot be told"
        )
    else:
        logger.info(
            f"note: commit {ours.commit[:12]} and live commit {live.commit[:12]} have diverged; deploying anyway"
        )
        return
    if allow_older:
        logger.info(f"{problem}; deploying anyway ({OVERRIDE})")
        return
    raise PipelineError(
        f"deploy refused: {problem}",
        f"deploy a newer commit; to go back on purpose use `python -m ci rollback` (or pass {OVERRIDE}); "
        "a shallow clone needs the live commit fetched (actions/checkout fetch-depth: 0)",
    )


def shallow(repo: Path) -> bool:
    return git(repo, "rev-parse", "--is-shallow-repository").stdout.strip() != "false"


def ancestor(repo: Path, older: str, newer: str) -> bool:
    return git(repo, "merge-base", "--is-ancestor", older, newer).returncode == 0
