"""Small facts about a layer tree that several steps need: its files, sizes, ELF files, owners."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

ELF_MAGIC = b"\x7fELF"


def walk_files(root: Path) -> Iterator[Path]:
    """Every regular file under root, in a stable order."""
    for current, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = Path(current) / name
            if path.is_file() and not path.is_symlink():
                yield path


def tree_size(root: Path) -> tuple[int, int]:
    """(files, bytes) under root."""
    files = size = 0
    for path in walk_files(root):
        files += 1
        size += path.stat().st_size
    return files, size


def is_elf(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) == ELF_MAGIC


def in_vendored_libs(rel: str) -> bool:
    """auditwheel's `<pkg>.libs/` (patchelf-edited libraries that strip would break)."""
    return any(part.endswith(".libs") for part in rel.split("/")[:-1])


def owner_of(rel: str, top_level: dict[str, str]) -> str | None:
    """The distribution that installed `rel` (relative to python/), by its first path component.

    Bytecode of a top-level module (python/__pycache__/six.cpython-311.pyc, or a sourceless
    python/six.pyc) belongs to the owner of six.py.
    """
    first = rel.split("/", 1)[0]
    if first == "__pycache__":
        first = rel.rsplit("/", 1)[-1].split(".", 1)[0] + ".py"
    elif first.endswith(".pyc") and first not in top_level:
        first = first.removesuffix(".pyc") + ".py"
    return top_level.get(first)


def remove_empty_dirs(root: Path) -> None:
    for current, _dirs, _files in sorted(os.walk(root, topdown=False), reverse=False):
        path = Path(current)
        if path != root and not any(path.iterdir()):
            path.rmdir()
