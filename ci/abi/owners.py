"""Which distribution put a file into the tree, so a violation names the package to change.

Best evidence first: *.dist-info/RECORD (every installed file), then top_level.txt (the
package names a distribution installs), then the first path component under the site
directory (with `foo.libs/`, auditwheel's vendored libraries, credited to `foo`).
"""

from __future__ import annotations

import csv
import os
import re
from email.parser import HeaderParser
from pathlib import Path, PurePosixPath


def normalize(name: str) -> str:
    """PEP 503 normalisation: Scikit_Learn, scikit-learn and scikit.learn are one project."""
    return re.sub(r"[-_.]+", "-", name).lower()


class Owners:
    """Maps paths relative to `root` to the distribution that installed them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._by_path: dict[str, str] = {}
        self._by_top_level: dict[tuple[str, str], str] = {}  # (site dir, top-level name) -> dist
        self._by_normalized: dict[str, str] = {}  # normalized project name -> dist
        self.sites: list[str] = []
        for dist_info in sorted(_dist_info_dirs(root)):
            self._learn(dist_info)
        if not self.sites:
            self.sites = ["python"] if (root / "python").is_dir() else [""]

    def distribution(self, rel_path: str) -> str | None:
        """Name of the distribution owning `rel_path` (posix, relative to root), or None if unknown."""
        if rel_path in self._by_path:
            return self._by_path[rel_path]
        site, rest = self._split_site(rel_path)
        if rest is None:
            return None
        first = rest.parts[0]
        module = first.split(".", 1)[0] if len(rest.parts) == 1 else first
        for name in (first, module):
            if (site, name) in self._by_top_level:
                return self._by_top_level[(site, name)]
        stem = first.removesuffix(".libs")
        return self._by_normalized.get(normalize(stem), stem)

    def _split_site(self, rel_path: str) -> tuple[str, PurePosixPath | None]:
        path = PurePosixPath(rel_path)
        for site in sorted(self.sites, key=len, reverse=True):
            site_path = PurePosixPath(site)
            if site == "" or path.is_relative_to(site_path):
                rest = path.relative_to(site_path) if site else path
                return site, (rest if rest.parts else None)
        return "", None

    def _learn(self, dist_info: Path) -> None:
        site = dist_info.parent
        site_rel = site.relative_to(self.root).as_posix()
        site_rel = "" if site_rel == "." else site_rel
        if site_rel not in self.sites:
            self.sites.append(site_rel)
        name = _project_name(dist_info)
        self._by_normalized[normalize(name)] = name
        record = dist_info / "RECORD"
        if record.is_file():
            with record.open(newline="", encoding="utf-8", errors="replace") as handle:
                for row in csv.reader(handle):
                    if row and not row[0].startswith(".."):
                        self._by_path[PurePosixPath(site_rel, row[0]).as_posix()] = name
        top_level = dist_info / "top_level.txt"
        if top_level.is_file():
            for line in top_level.read_text(errors="replace").splitlines():
                if line.strip():
                    self._by_top_level[(site_rel, line.strip().split("/")[0])] = name


def _dist_info_dirs(root: Path) -> list[Path]:
    found = []
    for current, dirs, _files in os.walk(root):
        for directory in dirs:
            if directory.endswith(".dist-info"):
                found.append(Path(current) / directory)
        dirs[:] = [d for d in dirs if not d.endswith(".dist-info")]
    return found


def _project_name(dist_info: Path) -> str:
    metadata = dist_info / "METADATA"
    if metadata.is_file():
        headers = HeaderParser().parsestr(metadata.read_text(encoding="utf-8", errors="replace"), headersonly=True)
        if headers.get("Name"):
            return str(headers["Name"]).strip()
    return dist_info.name.removesuffix(".dist-info").rsplit("-", 1)[0]
