"""The import trace: which files of the layer the function really imported or mapped, per distribution.

The budget and the bytecode/pruning rules use it to tell what is shipped but never touched.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ci.site.owners import Owners


def _shipped(layer_root: Path) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for directory, _dirs, files in os.walk(layer_root):
        for name in files:
            path = Path(directory, name)
            if not path.is_symlink():
                sizes[path.relative_to(layer_root).as_posix()] = path.stat().st_size
    return sizes


def import_trace(traced: list[str], layer_root: Path, top_level: dict[str, str] | None) -> dict[str, Any]:
    """Summarise the traced absolute paths: layer files, and per distribution imported vs shipped."""
    root = layer_root.resolve()
    shipped = _shipped(root)
    imported = sorted(
        {Path(path).relative_to(root).as_posix() for path in traced if Path(path).is_relative_to(root)} & set(shipped)
    )
    owners = Owners.of_tree(root, top_level=top_level)

    def owner(relative: str) -> str:
        return owners.distribution(relative) or owners.guess(relative) or relative.split("/", 1)[0]

    distributions: dict[str, dict[str, int]] = {}
    for relative, size in shipped.items():
        entry = distributions.setdefault(
            owner(relative), {"imported_files": 0, "imported_bytes": 0, "shipped_files": 0, "shipped_bytes": 0}
        )
        entry["shipped_files"] += 1
        entry["shipped_bytes"] += size
    for relative in imported:
        entry = distributions[owner(relative)]
        entry["imported_files"] += 1
        entry["imported_bytes"] += shipped[relative]
    return {
        "files": imported,
        "imported_bytes": sum(shipped[relative] for relative in imported),
        "shipped_bytes": sum(shipped.values()),
        "distributions": dict(sorted(distributions.items())),
        "never_imported": sorted(name for name, entry in distributions.items() if entry["imported_files"] == 0),
    }
