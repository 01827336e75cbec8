"""Which distribution put a (layer-relative) file into the layer: one answer for the build, ABI, budget and smoke
reports. Evidence, best first: the exact RECORD path, build.json's "top_level", top_level.txt, a RECORD line's first
component, the *.dist-info folder, then the component's own name (foo.libs/, foo.py, foo.*.so, __pycache__/foo.pyc)."""

import csv
import io
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path, PurePosixPath
from typing import Self

from ci.zipsafe import open_zip

BUILD_SITE = "python"  # the site build.json's "top_level" map describes

_SITE_PACKAGES = re.compile(r"^python/lib/python\d+\.\d+/site-packages(?=/|$)")
_METADATA_FOLDER = re.compile(r"^(?:(?P<site>.*?)/)?(?P<folder>[^/]+\.(?:dist|egg)-info)/")  # the first in a path
_MODULE_SUFFIX = re.compile(r"(\.cpython-[^./]+|\.abi3|\.cp\d+-[^./]+)?\.(so|pyd)$|\.pyc?$")


def canonical(name: str) -> str:
    """PEP 503 name: scikit_learn, Scikit.Learn and scikit-learn are one distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


def top_level_entries(files: Iterable[str]) -> list[str]:
    """The first path components of `files` (relative to a site): what build.json's "top_level" maps."""
    return sorted({path.split("/", 1)[0] for path in files})


def module_stem(component: str) -> str:
    """six for six.py, six.pyc and _speedups.cpython-311-x86_64-linux-gnu.so; numpy for numpy.libs."""
    return _MODULE_SUFFIX.sub("", component.removesuffix(".libs"))


@dataclass(frozen=True)
class DistInfo:
    site: str  # layer-relative directory holding the folder ("" for the root)
    folder: str  # scikit_learn-1.3.2.dist-info
    name: str  # METADATA's Name, else the folder's name part
    version: str | None
    record: tuple[str, ...] = ()  # RECORD paths, relative to the site
    top_level: tuple[str, ...] = ()  # top_level.txt names


Reader = Callable[[str], bytes | None]


def read_dist_info(site: str, folder: str, read: Reader) -> DistInfo:
    """Parse the folder's METADATA (or PKG-INFO), RECORD and top_level.txt; `read` returns None for a missing file."""
    base = f"{site}/{folder}" if site else folder

    def text(member: str) -> str:
        data = read(f"{base}/{member}")
        return data.decode("utf-8", "replace") if data is not None else ""

    stem = folder.removesuffix(".dist-info").removesuffix(".egg-info")
    folder_name, _, folder_version = stem.partition("-")
    name, version = folder_name, folder_version or None
    metadata = text("METADATA") or text("PKG-INFO")
    if metadata:
        headers = HeaderParser().parsestr(metadata, headersonly=True)
        name = str(headers.get("Name") or "").strip() or name
        version = version or (str(headers.get("Version") or "").strip() or None)
    rows = csv.reader(io.StringIO(text("RECORD"), newline=""))
    record = [row[0] for row in rows if row and row[0] and not row[0].startswith("..")]
    top_level = [entry for line in text("top_level.txt").splitlines() if (entry := line.strip().split("/", 1)[0])]
    return DistInfo(site, folder, name, version, tuple(record), tuple(top_level))


class Owners:
    """file -> distribution for one layer: build with `of_tree`, `of_zip`, `of_entries` or `of_installed`."""

    def __init__(
        self,
        dists: Iterable[DistInfo] = (),
        top_level: Mapping[str, str] | None = None,
        names: Iterable[str] = (),
        files: Mapping[str, str] | None = None,
        bare: bool = False,
    ) -> None:
        """`top_level`: build.json's map; `names`: more distributions to match by name; `files`: exact
        layer paths -> distribution (an installer's record); `bare`: the layer root is itself the site."""
        self.dists = sorted(dists, key=lambda d: (d.site, d.folder))
        self.top_level = dict(top_level or {})
        self._by_path = dict(files or {})
        self._sites = {d.site for d in self.dists} | ({""} if bare else set())
        self._declared: dict[str, dict[str, str]] = {}  # site -> top_level.txt name -> dist
        self._recorded: dict[str, dict[str, str]] = {}  # site -> RECORD first component -> dist
        self._folders: dict[str, dict[str, str]] = {}  # site -> *.dist-info folder -> dist
        self._by_name: dict[str, str] = {}  # canonical name -> name
        for name in [*names, *self.top_level.values()]:
            self._by_name.setdefault(canonical(name), name)
        for dist in self.dists:
            self._by_name.setdefault(canonical(dist.name), dist.name)
            self._folders.setdefault(dist.site, {})[dist.folder] = dist.name
            for entry in dist.top_level:
                self._declared.setdefault(dist.site, {}).setdefault(entry, dist.name)
            for path in dist.record:
                self._by_path.setdefault(str(PurePosixPath(dist.site, path)), dist.name)
                first = path.split("/", 1)[0]
                if first != "__pycache__":  # shared by every top-level module: says nothing
                    self._recorded.setdefault(dist.site, {}).setdefault(first, dist.name)

    @classmethod
    def of_entries(
        cls, paths: Iterable[str], read: Reader, top_level: Mapping[str, str] | None = None, names: Iterable[str] = ()
    ) -> Self:
        """From a file list (a zip's entries); `read` is called only for metadata files in the list."""
        members = set(paths)
        found = (_METADATA_FOLDER.match(path) for path in members)
        folders = {(match["site"] or "", match["folder"]) for match in found if match}
        bare = not any(path.startswith(BUILD_SITE + "/") for path in members)
        dists = [  # only a directory on sys.path: a *.dist-info vendored deeper (setuptools/_vendor/) is payload
            read_dist_info(site, folder, lambda path: read(path) if path in members else None)
            for site, folder in sorted(folders)
            if site == BUILD_SITE or _SITE_PACKAGES.fullmatch(site) or (bare and site == "")
        ]
        return cls(dists, top_level, names, bare=bare)

    @classmethod
    def of_zip(cls, path: Path, top_level: Mapping[str, str] | None = None, names: Iterable[str] = ()) -> Self:
        with open_zip(path, "rebuild it: `python -m ci build`") as archive:
            entries = [info.filename for info in archive.files]
            return cls.of_entries(entries, archive.read, top_level, names)

    @classmethod
    def of_tree(cls, root: Path, top_level: Mapping[str, str] | None = None, names: Iterable[str] = ()) -> Self:
        """From an unpacked layer (the folder holding python/, or a bare site directory)."""
        paths = [
            (Path(current) / name).relative_to(root).as_posix() for current, _, files in os.walk(root) for name in files
        ]
        return cls.of_entries(paths, lambda path: (root / path).read_bytes(), top_level, names)

    @classmethod
    def of_installed(cls, installed: Iterable[tuple[str, Iterable[str]]]) -> Self:
        """From the build's own install: (distribution, files relative to python/) for each wheel."""
        files: dict[str, str] = {}
        top_level: dict[str, str] = {}
        for name, entries in installed:
            paths = list(entries)
            files.update({f"{BUILD_SITE}/{path}": name for path in paths})
            top_level.update(dict.fromkeys(top_level_entries(paths), name))
        return cls(top_level=top_level, files=files)

    def _locate(self, path: str) -> tuple[str, str, str, bool] | None:
        """(site, first component under it, its stem, whether it is a file) by the deepest site holding `path`."""
        candidates = [site for site in self._sites if site == "" or path.startswith(site + "/")]
        if match := _SITE_PACKAGES.match(path):
            candidates.append(match.group(0))
        if path.startswith(BUILD_SITE + "/"):
            candidates.append(BUILD_SITE)
        if not candidates:
            return None
        site = max(candidates, key=len)
        rest = path[len(site) + 1 :] if site else path
        if not rest:
            return None
        parts = rest.split("/")
        first, is_file = parts[0], len(parts) == 1
        if first == "__pycache__" and len(parts) == 2:
            first, is_file = parts[1].split(".", 1)[0] + ".py", True
        stem = module_stem(first) if is_file or first.endswith(".libs") else first
        return site, first, stem, is_file

    def distribution(self, path: str) -> str | None:
        """The distribution that installed `path` (layer-relative, posix), or None without evidence."""
        if path in self._by_path:
            return self._by_path[path]
        located = self._locate(path)
        if located is None:
            return None
        site, first, stem, is_file = located
        keys = list(dict.fromkeys([first, stem + ".py", stem])) if is_file else [first]
        maps = [
            self.top_level if site == BUILD_SITE else {},
            self._declared.get(site, {}),
            self._recorded.get(site, {}),
            self._folders.get(site, {}),
        ]
        by_key = (mapping[key] for mapping in maps for key in keys if key in mapping)
        by_libs = (mapping[stem] for mapping in maps[:3] if stem in mapping)  # foo.libs/ of the owner of package foo
        return next(by_key, None) or self._by_name.get(canonical(stem)) or next(by_libs, None)

    def guess(self, path: str) -> str | None:
        """The name a report shows for a file without evidence: its first component's stem (loose/ -> loose)."""
        located = self._locate(path)
        return located[2] if located else None

    def completed_top_level(self, entries: Iterable[str]) -> dict[str, str]:
        """build.json's "top_level": the map plus every other owned first component under python/ (a lone .pyc)."""
        found = {entry: self.distribution(f"{BUILD_SITE}/{entry}") for entry in entries if entry != "__pycache__"}
        completed = {entry: owner for entry, owner in found.items() if owner is not None} | self.top_level
        return dict(sorted(completed.items()))
