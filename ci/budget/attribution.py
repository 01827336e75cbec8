"""Which distribution shipped a file, and what kind of file it is.

The build's report maps each first path component under python/ to its distribution
("top_level"); the layer's own *.dist-info (top_level.txt, RECORD) fill any gap, so the budget
still attributes files in a layer it did not build (an extra layer, a baseline, a test zip).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from ci.budget.zips import ZipContents

LAYER_PREFIX = "python/"
UNATTRIBUTED = "(unattributed)"

EXTENSION_MODULES = "extension modules"
VENDORED_LIBRARIES = "vendored shared libraries"
PYTHON_SOURCE = "Python source"
BYTECODE = "bytecode"
DATA = "data"
METADATA = "metadata"
CATEGORIES = (EXTENSION_MODULES, VENDORED_LIBRARIES, PYTHON_SOURCE, BYTECODE, DATA, METADATA)

_SHARED_OBJECT = re.compile(r"\.so(\.\d+)*$")
_EXTENSION_SUFFIX = re.compile(r"(\.cpython-[^.]+|\.abi3)?\.so$")


def canonical(name: str) -> str:
    """PEP 503 name: scikit_learn, Scikit.Learn and scikit-learn are one distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


def category(path: str) -> str:
    """One of CATEGORIES. Metadata and vendored libraries are judged by folder, the rest by suffix."""
    folders = path.split("/")[:-1]
    name = path.rsplit("/", 1)[-1]
    if any(folder.endswith((".dist-info", ".egg-info")) for folder in folders):
        return METADATA
    if any(folder.endswith(".libs") for folder in folders):
        return VENDORED_LIBRARIES
    if name.endswith(".pyc"):
        return BYTECODE
    if name.endswith((".py", ".pyi")):
        return PYTHON_SOURCE
    if _SHARED_OBJECT.search(name):
        return EXTENSION_MODULES
    return DATA


def first_component(path: str) -> str | None:
    """numpy for python/numpy/core/x.so; None for anything outside python/."""
    if not path.startswith(LAYER_PREFIX):
        return None
    rest = path[len(LAYER_PREFIX) :]
    return rest.split("/", 1)[0] if rest else None


def _dist_info_name(folder: str) -> str | None:
    for suffix in (".dist-info", ".egg-info"):
        if folder.endswith(suffix):
            return folder[: -len(suffix)].split("-", 1)[0]
    return None


class Attributor:
    """Maps layer paths to distribution names (as the build report spells them when it can)."""

    def __init__(
        self, layer: ZipContents, top_level: Mapping[str, str] | None = None, names: Sequence[str] = ()
    ) -> None:
        self._display: dict[str, str] = {canonical(name): name for name in names}
        self._owner: dict[str, str] = {}
        self.versions: dict[str, str] = {}  # distribution -> version, from *.dist-info folder names
        self._learn_from_dist_info(layer)
        for component, distribution in (top_level or {}).items():
            self._owner[component] = self._name(distribution)

    def _name(self, distribution: str) -> str:
        return self._display.setdefault(canonical(distribution), canonical(distribution))

    def _learn_from_dist_info(self, layer: ZipContents) -> None:
        members = {entry.path for entry in layer.entries}
        folders = {first_component(path) for path in members}
        for folder in sorted(f for f in folders if f):
            raw_name = _dist_info_name(folder)
            if raw_name is None:
                continue
            distribution = self._name(raw_name)
            self._owner[folder] = distribution
            _, _, version = folder.rsplit(".", 1)[0].partition("-")
            if version:
                self.versions[distribution] = version
            for member in (f"{LAYER_PREFIX}{folder}/top_level.txt", f"{LAYER_PREFIX}{folder}/RECORD"):
                if member not in members:
                    continue
                for line in layer.read(member).decode("utf-8", "replace").splitlines():
                    component = line.split(",", 1)[0].strip().split("/", 1)[0]
                    if component and not component.startswith(".."):
                        self._owner.setdefault(component, distribution)

    def distribution(self, path: str) -> str:
        component = first_component(path)
        if component is None:
            return UNATTRIBUTED
        if component == "__pycache__":  # python/__pycache__/six.cpython-311.pyc: bytecode of a top-level module
            component = path.rsplit("/", 1)[-1].split(".", 1)[0] + ".py"
        if component in self._owner:
            return self._owner[component]
        # Single-file modules and vendored-library folders named after the distribution.
        stem = _EXTENSION_SUFFIX.sub("", component).removesuffix(".py").removesuffix(".libs")
        if stem in self._owner:
            return self._owner[stem]
        return self._display.get(canonical(stem), UNATTRIBUTED)
