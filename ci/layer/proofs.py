"""Proofs (verify, trace, prove) reused for the exact bytes they were made on: a passing one is recorded under
digests of all its inputs and sealed (ci/cache_seal.py); `ci build --fresh-proofs` makes every one again."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import ci
from ci import cache_seal
from ci.cache_seal import sources_digest
from ci.reports import sha256_file

FORMAT = 1  # bump when what a record holds changes
_SEAL = "proof"  # the cache seal's purpose


def tree_digest(root: Path) -> str:
    """sha256 naming a tree exactly: every directory (an empty one can be a namespace package), file (bytes,
    executable bit) and link; files hashed on two threads (hashlib releases the GIL)."""
    entries: list[tuple[str, str, Path | None]] = []  # (kind, rel, file to hash)
    for current, dirs, files in os.walk(root):
        dirs.sort()
        folder = Path(current)
        rel_dir = folder.relative_to(root).as_posix()
        entries.append(("d", rel_dir, None))
        for name in sorted(files) + [d for d in dirs if (folder / d).is_symlink()]:
            path = folder / name
            rel = f"{rel_dir}/{name}"
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                entries.append(("l", f"{rel} -> {path.readlink()}", None))
            elif stat.S_ISREG(mode):
                entries.append(("x" if mode & 0o111 else "f", rel, path))
            else:
                entries.append(("?", f"{rel} {stat.S_IFMT(mode):o}", None))

    def digest_of(entry: tuple[str, str, Path | None]) -> str:
        kind, rel, path = entry
        if path is None:
            return f"{kind} {rel}"
        with path.open("rb") as file:
            return f"{kind} {rel} {hashlib.file_digest(file, 'sha256').hexdigest()}"

    with ThreadPoolExecutor(max_workers=2) as pool:
        lines = list(pool.map(digest_of, entries))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


@cache
def prover_digest() -> str:
    """This repository's pipeline code: a proof made by other code is made again."""
    return sources_digest(Path(ci.__file__).parent)


def json_digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def file_digest(path: Path) -> str:
    return sha256_file(path) if path.is_file() else "none"


def binaries_digest(paths: tuple[str, ...]) -> str:
    """What executes the proofs: each binary's name and bytes (the interpreter and its libpython; qemu and the
    guest's). Not where it is: a checkout elsewhere with the same emulation sysroot runs the same code."""
    resolved = [Path(os.path.realpath(path)) for path in paths]
    return hashlib.sha256("\n".join(f"{p.name} {file_digest(p)}" for p in resolved).encode()).hexdigest()


@dataclass(frozen=True)
class Reused:
    """A record this build may stand on: when it was made, and the key naming its inputs."""

    made: str
    key: str
    result: dict[str, Any]

    def note(self) -> str:
        return f"reused: made {self.made} on these exact bytes, proof {self.key[:12]}"

    def to_json(self) -> dict[str, str]:
        return {"made": self.made, "key": self.key}


class ProofStore:
    """build/cache/proofs/<kind>-<key>.json; `enabled` False (--fresh-proofs) makes and records every proof."""

    def __init__(self, root: Path, enabled: bool = True) -> None:
        self.root = root
        self.enabled = enabled

    @staticmethod
    def key(kind: str, facts: dict[str, str]) -> str:
        return hashlib.sha256(json.dumps([FORMAT, kind, facts], sort_keys=True).encode()).hexdigest()

    def _file(self, kind: str, key: str) -> Path:
        return self.root / f"{kind}-{key}.json"

    def find(self, kind: str, facts: dict[str, str]) -> Reused | None:
        """The record of a passing proof on exactly `facts`, or None (absent, unreadable, or naming others)."""
        if not self.enabled:
            return None
        key = self.key(kind, facts)
        try:
            record = cache_seal.unsealed_json(_SEAL, key, json.loads(self._file(kind, key).read_text()))
        except (OSError, ValueError):
            return None
        if record is None:
            return None  # not a record, or not made on this machine
        if record.get("format") != FORMAT or record.get("kind") != kind or record.get("facts") != facts:
            return None  # copied or edited under another key: it does not vouch for these inputs
        result, made = record.get("result"), record.get("made")
        if not isinstance(result, dict) or not isinstance(made, str):
            return None
        return Reused(made=made, key=key, result=result)

    def record(self, kind: str, facts: dict[str, str], result: dict[str, Any]) -> None:
        """Record a passing proof (atomically: builds side by side share the cache)."""
        key = self.key(kind, facts)
        made = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        self.root.mkdir(parents=True, exist_ok=True)
        target = self._file(kind, key)
        partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
        body = {"format": FORMAT, "kind": kind, "facts": facts, "made": made, "result": result}
        partial.write_text(json.dumps(cache_seal.sealed_json(_SEAL, key, body), sort_keys=True))
        partial.replace(target)

    def reuse_or_make(
        self, kind: str, facts: dict[str, str], make: Callable[[], dict[str, Any]]
    ) -> tuple[dict[str, Any], Reused | None]:
        """The recorded result for `facts`, or `make()`'s (recorded when it returns; a raise records nothing)."""
        found = self.find(kind, facts)
        if found is not None:
            return found.result, found
        result = make()
        self.record(kind, facts, result)
        return result, None
