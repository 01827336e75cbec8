"""What the build's caches trust: keys that hash the code deciding a result (not only its name), and HMAC seals
keyed by a secret outside every cache directory, since build/cache travels through actions/cache that any job on
main can write (docs/design.md, "Cache seals")."""

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterable
from contextlib import suppress
from functools import cache
from pathlib import Path
from typing import Any


def key_file() -> Path:
    """$XDG_STATE_HOME/forgetting-curve-lambda/cache-seal.key (~/.local/state by default): never under build/."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "forgetting-curve-lambda" / "cache-seal.key"


@cache
def _key(path: Path) -> bytes:
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(secrets.token_bytes(32))
        with suppress(FileExistsError):
            os.link(partial, path)  # the first of two builds making it wins; both then read its key
        partial.unlink()
    key = path.read_bytes()
    if len(key) < 32:
        raise OSError(f"{path} is not a cache seal key (under 32 bytes); delete it to make a new one")
    return key


def _mac(purpose: str, name: str, data: bytes = b"") -> hmac.HMAC:
    return hmac.new(_key(key_file()), purpose.encode() + b"\0" + name.encode() + b"\0" + data, hashlib.sha256)


def seal(purpose: str, name: str, data: bytes) -> str:
    return _mac(purpose, name, data).hexdigest()


def seal_file(purpose: str, name: str, path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, lambda: _mac(purpose, name)).hexdigest()


def matches(expected: str, actual: str) -> bool:
    return hmac.compare_digest(expected.encode(), actual.encode())


def sealed_entry(purpose: str, key: str, entries: Iterable[tuple[Path, str]]) -> Path | None:
    """The first (file, seal in its name) sealed here for `key`; the others (forged, torn, foreign) are deleted."""
    for entry, mark in entries:
        try:
            if matches(seal_file(purpose, key, entry), mark):
                return entry
        except FileNotFoundError:
            continue
        entry.unlink(missing_ok=True)
    return None


def sealed_json(purpose: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "seal": seal(purpose, name, json.dumps(body, sort_keys=True).encode())}


def unsealed_json(purpose: str, name: str, data: object) -> dict[str, Any] | None:
    """The body of a record sealed_json made here, or None (not a dict, no seal, or sealed elsewhere)."""
    if not isinstance(data, dict) or not isinstance(data.get("seal"), str):
        return None
    body = {key: value for key, value in data.items() if key != "seal"}
    return body if matches(seal(purpose, name, json.dumps(body, sort_keys=True).encode()), data["seal"]) else None


def sources_digest(*paths: Path) -> str:
    """sha256 of source code: a file, or every file under a directory (no __pycache__), by name and bytes."""
    digest = hashlib.sha256()
    for path in paths:
        if not path.exists():
            digest.update(f"{path.name}\0missing\0".encode())
            continue
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in (file for file in files if "__pycache__" not in file.parts):
            digest.update(f"{file.relative_to(path.parent).as_posix()}\0".encode())
            digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()
