"""`python -m ci lock`: compile the four locks in order (and uv's bootstrap file), then prove the layer lock fits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ci.config import Config
from ci.lock.bootstrap import write_bootstrap
from ci.lock.files import display_path
from ci.lock.lockfile import read_lock
from ci.lock.resolve import compile_lock, lock_jobs


@dataclass(frozen=True)
class LockChange:
    file: str
    added: list[str]
    removed: list[str]
    changed: list[str]
    rewritten: bool  # bytes differ (hashes or annotations), even with the same pins

    def describe(self) -> str:
        if not self.rewritten:
            return f"{self.file}: unchanged"
        parts = [*(f"+{p}" for p in self.added), *(f"-{p}" for p in self.removed), *self.changed]
        return f"{self.file}: " + (", ".join(parts) if parts else "same pins, hashes or annotations updated")


def compile_all(
    config: Config, upgrade: bool = False, upgrade_packages: tuple[str, ...] = (), uv_cache: Path | None = None
) -> list[LockChange]:
    changes = []
    for job in lock_jobs(config):
        before_bytes = job.output.read_bytes() if job.output.is_file() else b""
        before = {n: p.version for n, p in read_lock(job.output).pins.items()} if before_bytes else {}
        compile_lock(job, config.lock.index_url, upgrade=upgrade, upgrade_packages=upgrade_packages, uv_cache=uv_cache)
        after = {n: p.version for n, p in read_lock(job.output).pins.items()}
        changes.append(
            LockChange(
                file=display_path(job.output, config.root),
                added=[f"{n}=={after[n]}" for n in sorted(after.keys() - before.keys())],
                removed=[f"{n}=={before[n]}" for n in sorted(before.keys() - after.keys())],
                changed=[
                    f"{n} {before[n]} -> {after[n]}"
                    for n in sorted(after.keys() & before.keys())
                    if before[n] != after[n]
                ],
                rewritten=job.output.read_bytes() != before_bytes,
            )
        )
    lock = config.lock
    bootstrap_before = lock.bootstrap_lock.read_bytes() if lock.bootstrap_lock.is_file() else b""
    write_bootstrap(lock.pipeline_lock, lock.bootstrap_lock, config.root)
    uv = read_lock(lock.bootstrap_lock).pins["uv"]
    changes.append(
        LockChange(
            file=display_path(lock.bootstrap_lock, config.root),
            added=[] if bootstrap_before else [f"uv=={uv.version}"],
            removed=[],
            changed=[],
            rewritten=lock.bootstrap_lock.read_bytes() != bootstrap_before,
        )
    )
    return changes
