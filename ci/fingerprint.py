"""Cache keys that cover everything deciding the cached result, so an edit is never answered by a stale copy.

A key made of names alone (the rules' names, a version number bumped by hand) survives an edit
of what the names stand for; these digests change with the code and definitions themselves.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def sources_digest(*paths: Path) -> str:
    """sha256 of source code: a file, or every file under a directory (no __pycache__), by name and bytes."""
    digest = hashlib.sha256()
    for path in paths:
        if not path.exists():
            digest.update(f"{path.name}\0missing\0".encode())
            continue
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        files = [file for file in files if "__pycache__" not in file.parts]
        for file in files:
            digest.update(f"{file.relative_to(path.parent).as_posix()}\0".encode())
            digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()
