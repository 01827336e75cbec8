"""The strip rule: debug symbols dropped from extension modules, never inside `*.libs/` (patchelf'd libraries
break: docs/design.md); every stripped file must still load, or it is restored and reported."""

from __future__ import annotations

import logging
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ci import cache_seal
from ci.abi import is_elf
from ci.layer.verify import Runner, run_checks
from ci.reports import sha256_file
from ci.site.rules import STRIP, RuleResult, in_vendored_libs, link_or_copy, walk_files

logger = logging.getLogger(__name__)

# (files that must load, site) -> {file: error} for those that do not
LoadCheck = Callable[[list[Path], Path], dict[Path, str]]

# Drops the static symbol table too (13 MB on this lock); PyInit_* and other exports stay in .dynsym.
STRIP_ARGS = ("--strip-unneeded",)


@dataclass
class StripResult(RuleResult):
    restored: dict[str, str] = field(default_factory=dict)  # path -> why the original was put back
    failed: dict[str, str] = field(default_factory=dict)  # path -> strip's own error (original kept)

    def summary(self, limit: int = 20) -> dict[str, object]:
        data = super().summary(limit)
        data["restored"] = dict(sorted(self.restored.items())[:limit])
        if self.failed:
            data["failed"] = dict(sorted(self.failed.items())[:limit])
        return data


def strip_tool(machine: str) -> str:
    """The host's strip reads only its own machine's ELF files; a cross binutils strips the others."""
    return "strip" if platform.machine() == machine else f"{machine}-linux-gnu-strip"


def strip_tree(site: Path, cache: Path, load_check: LoadCheck, strip_tool: str = "strip") -> StripResult:
    result = StripResult(STRIP)
    if shutil.which(strip_tool) is None:
        package = "binutils" if strip_tool == "strip" else f"binutils-{strip_tool.removesuffix('-strip')}"
        result.failed["*"] = f"{strip_tool} not found on PATH (install {package}); nothing stripped"
        return result
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="strip-originals-", dir=cache) as backup_dir:
        backup = Path(backup_dir)
        changed: dict[Path, tuple[Path, int]] = {}  # file -> (original copy, bytes saved)
        for path in list(walk_files(site)):
            rel = path.relative_to(site).as_posix()
            # ELF files outside `*.libs/`: extension modules and the packages' own shared libraries
            if not (path.suffix == ".so" or ".so." in path.name) or in_vendored_libs(rel) or not is_elf(path):
                continue
            stripped, error = _stripped_copy(path, cache, strip_tool)
            if stripped is None:
                result.failed[rel] = error
                continue
            saved = path.stat().st_size - stripped.stat().st_size
            if saved <= 0:
                continue
            original = backup / rel
            original.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(path, original)
            link_or_copy(stripped, path)  # the cache entry is re-hashed before any reuse: a change is caught
            shutil.copymode(original, path)
            changed[path] = (original, saved)
        failures = load_check(sorted(changed), site) if changed else {}
        for path, (original, saved) in sorted(changed.items()):
            rel = path.relative_to(site).as_posix()
            if path in failures:
                shutil.move(original, path)  # the original, byte for byte
                result.restored[rel] = failures[path]
                continue
            result.files += 1
            result.bytes += saved
            result.paths.append(rel)
    return result


def _stripped_copy(path: Path, cache: Path, strip_tool: str) -> tuple[Path | None, str]:
    """The stripped `path` from the cache (reused only under its seal), made on a miss; (None, error) if it fails."""
    flags = "".join(arg.strip("-")[0] + arg.strip("-")[-1] for arg in STRIP_ARGS)
    key = f"{sha256_file(path)}-{flags}"
    named = [(entry, entry.name[len(key) + 1 : -len(".so")]) for entry in sorted(cache.glob(f"{key}.*.so"))]
    cached = cache_seal.sealed_entry(STRIP, key, named)
    if cached is not None:
        logger.debug(f"strip: cache hit {cached.name} for {path.name}")
        return cached, ""
    partial = cache / f"{key}.{os.getpid()}.partial"
    command = [strip_tool, *STRIP_ARGS, "-o", str(partial), str(path)]
    logger.debug(f"strip: cache miss for {path.name}; run: {shlex.join(command)}")
    run = subprocess.run(command, capture_output=True, text=True, check=False)
    if run.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        return None, (run.stderr or run.stdout).strip()[-300:]
    cached = cache / f"{key}.{cache_seal.seal_file(STRIP, key, partial)}.so"
    partial.replace(cached)
    return cached, ""


def dlopen_check(python: str, extra_paths: Sequence[Path] = ()) -> LoadCheck:
    """dlopen each file in the target interpreter on the verification's sys.path; a crash names its culprit."""

    def check(files: list[Path], site: Path) -> dict[Path, str]:
        items = [("library", str(path)) for path in files]
        outcomes = run_checks(Runner(python, None, extra_paths), site, items, jobs=1)
        return {Path(outcome.name): outcome.error for outcome in outcomes.values() if outcome.error is not None}

    return check
