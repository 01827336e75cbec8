"""The import trace: which files of the layer the function really imported or mapped, per distribution.

The budget report and the bytecode/pruning rules use it to tell what is shipped but never touched.
Files are named as in layer.zip (python/...). A file is attributed to a distribution with the
build report's "top_level" map when there is one, else with the layer's own dist-info RECORDs.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

SITE_PACKAGES_PREFIX = "python/lib/"


def top_level_component(relative: str) -> str:
    """The first path component under python/ (or under python/lib/pythonX.Y/site-packages/)."""
    parts = relative.split("/")
    if relative.startswith(SITE_PACKAGES_PREFIX) and len(parts) > 4:
        return parts[4]
    return parts[1] if len(parts) > 1 else parts[0]


def _distribution_name(dist_info: Path) -> str:
    metadata = dist_info / "METADATA"
    if metadata.is_file():
        for line in metadata.read_text(errors="replace").splitlines():
            if line.startswith("Name:"):
                return line.split(":", 1)[1].strip()
            if not line:
                break
    return dist_info.name.split("-")[0]


def owners_from_records(layer_root: Path) -> dict[str, str]:
    """{top-level component: distribution} from every *.dist-info/RECORD (and top_level.txt) in the layer."""
    owners: dict[str, str] = {}
    for dist_info in layer_root.glob("python/**/*.dist-info"):
        name = _distribution_name(dist_info)
        owners[dist_info.name] = name
        record = dist_info / "RECORD"
        if record.is_file():
            with record.open(newline="", errors="replace") as handle:
                for row in csv.reader(handle):
                    if row and not row[0].startswith(".."):
                        owners.setdefault(row[0].split("/")[0], name)
        top_level = dist_info / "top_level.txt"
        if top_level.is_file():
            for line in top_level.read_text().split():
                owners.setdefault(line, name)
                owners.setdefault(line + ".py", name)
    return owners


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
    owners = owners_from_records(root)
    owners.update(top_level or {})

    def owner(relative: str) -> str:
        component = top_level_component(relative)
        return owners.get(component, owners.get(component.removesuffix(".py"), component))

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
