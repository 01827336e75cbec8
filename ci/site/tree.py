"""Facts about a site tree that several steps need: files, sizes, vendored libraries, globs (owners: owners.py)."""

from __future__ import annotations

import fnmatch
import os
import shutil
from collections.abc import Iterator
from pathlib import Path


def walk_files(root: Path) -> Iterator[Path]:
    """Every regular file under root, in a stable order."""
    for current, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = Path(current) / name
            if path.is_file() and not path.is_symlink():
                yield path


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link to a cached file (a copy across file systems); only for files no one writes in place."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def tree_size(root: Path) -> tuple[int, int]:
    """(files, bytes) under root."""
    sizes = [path.stat().st_size for path in walk_files(root)]
    return len(sizes), sum(sizes)


def in_vendored_libs(rel: str) -> bool:
    """auditwheel's `<pkg>.libs/` (patchelf-edited libraries that strip would break)."""
    return any(part.endswith(".libs") for part in rel.split("/")[:-1])


def remove_empty_dirs(root: Path) -> None:
    """Bottom-up, so a directory whose only content was an emptied directory goes too."""
    for current, _dirs, _files in os.walk(root, topdown=False):
        path = Path(current)
        if path != root and not any(path.iterdir()):
            path.rmdir()


def globbed(site: Path, patterns: tuple[str, ...]) -> frozenset[str]:
    """Files under `site` matching build.keep's globs: no rule may remove them."""
    if not patterns:
        return frozenset()
    rels = [path.relative_to(site).as_posix() for path in walk_files(site)]
    return frozenset(rel for rel in rels if any(fnmatch.fnmatchcase(rel, pattern) for pattern in patterns))
