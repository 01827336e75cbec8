"""The delta against a baseline: another budget.json, or the layer built from the lock at a git ref."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from ci.budget.inputs import read_json
from ci.budget.model import Budget, Comparison, DistributionDelta
from ci.errors import PipelineError
from ci.reports import REPORT_FORMAT
from ci.site.owners import canonical


def load_baseline(path: Path) -> dict[str, Any]:
    """A budget.json written by this pipeline's report format; anything else is refused by name."""
    fix = "pass a budget.json written by `python -m ci budget` of this pipeline version, or use --baseline-ref REF"
    data = read_json(path, fix, what="baseline ")
    assert data is not None  # required: a missing file raised
    if data.get("format") != REPORT_FORMAT:
        raise PipelineError(
            f"baseline {path} has report format {data.get('format')!r}; this pipeline reads format {REPORT_FORMAT}",
            "rebuild the baseline with this version (e.g. --baseline-ref main) instead of an old report",
        )
    if data.get("check") != "budget" or not isinstance(data.get("used_bytes"), int):
        raise PipelineError(f"baseline {path} is not a budget report (check = {data.get('check')!r})", fix)
    rows = data.get("distributions")
    if not isinstance(rows, list) or not all(
        isinstance(row, dict) and isinstance(row.get("name"), str) and isinstance(row.get("unzipped_bytes"), int)
        for row in rows
    ):
        raise PipelineError(f"baseline {path} has no per-distribution figures (name, unzipped_bytes)", fix)
    return data


def compare(budget: Budget, baseline: dict[str, Any], label: str, source: str) -> Comparison:
    """Per distribution: added, removed, changed (bytes or version) or unchanged; largest change first."""
    before = {canonical(row["name"]): row for row in baseline["distributions"]}
    after = {canonical(group.name): group for group in budget.distributions}
    rows = []
    for key in before.keys() | after.keys():
        old, new = before.get(key), after.get(key)
        old_bytes = int(old["unzipped_bytes"]) if old else 0
        new_bytes = new.unzipped_bytes if new else 0
        old_version = old.get("version") if old else None
        new_version = new.version if new else None
        if old is None:
            status = "added"
        elif new is None:
            status = "removed"
        elif old_bytes != new_bytes or old_version != new_version:
            status = "changed"
        else:
            status = "unchanged"
        rows.append(
            DistributionDelta(
                name=new.name if new else str(old["name"]),  # type: ignore[index]
                status=status,
                before_bytes=old_bytes,
                after_bytes=new_bytes,
                before_version=old_version,
                after_version=new_version,
            )
        )
    rows.sort(key=lambda row: (-abs(row.delta_bytes), row.name))
    return Comparison(
        label=label,
        source=source,
        before_used_bytes=int(baseline["used_bytes"]),
        after_used_bytes=budget.used_bytes,
        distributions=rows,
    )


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, check=False)


def lock_at_ref(root: Path, ref: str, lock_path: str) -> tuple[str, bytes]:
    """(commit sha, lock bytes) of `lock_path` at `ref`; a ref or file that is not there is an error."""
    resolved = _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if resolved.returncode != 0:
        raise PipelineError(
            f"git ref {ref!r} does not exist in {root}",
            f"name an existing branch, tag or commit; in CI fetch the base branch first (git fetch origin {ref})",
        )
    sha = resolved.stdout.decode().strip()
    shown = _git(root, "show", f"{sha}:{lock_path}")
    if shown.returncode != 0:
        raise PipelineError(
            f"{lock_path} does not exist at {ref} ({sha[:12]}): there is no layer to compare with",
            "compare with a ref that has the lock, or pass --baseline PATH to a budget.json",
        )
    return sha, shown.stdout


def build_layer_at(lock: bytes, build_dir: Path, cache_dir: Path, config_file: Path, model_dir: Path) -> None:
    """`python -m ci build` of `lock` into its own build tree, sharing the download cache.

    The build reads lock.layer_lock of its configuration, so the baseline gets a copy of this
    checkout's configuration (same target, same rules) whose layer_lock names the ref's lock.
    It also gets this build's model: the runtime bytecode is chosen by tracing the handler on it.
    """
    build_dir.mkdir(parents=True, exist_ok=True)
    if model_dir.is_dir():
        shutil.copytree(model_dir, build_dir / "model", dirs_exist_ok=True)
    lock_file = build_dir / "requirements-layer.txt"
    lock_file.write_bytes(lock)
    settings = build_dir / "pipeline.toml"
    settings.write_text(_with_layer_lock(config_file, lock_file))
    command = [sys.executable, "-m", "ci", "--build-dir", str(build_dir), "--cache-dir", str(cache_dir)]
    command += ["--config", str(settings), "build"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise PipelineError(
            f"building the baseline layer in {build_dir} failed (exit {result.returncode}):\n{tail}",
            "fix the build of that lock, or compare with --baseline PATH instead",
        )


_LAYER_LOCK = re.compile(r"^(?P<key>\s*layer_lock\s*=\s*)(?P<value>\"[^\"\n]*\"|'[^'\n]*')", re.MULTILINE)


def _with_layer_lock(config_file: Path, lock_file: Path) -> str:
    text = config_file.read_text()
    if len(_LAYER_LOCK.findall(text)) != 1:
        raise PipelineError(
            f"{config_file} must set lock.layer_lock exactly once for a baseline build",
            'write layer_lock = "requirements-layer.txt" under [lock]',
        )
    return _LAYER_LOCK.sub(lambda m: m["key"] + json.dumps(str(lock_file)), text)


def lock_digest(lock: bytes) -> str:
    return hashlib.sha256(lock).hexdigest()
