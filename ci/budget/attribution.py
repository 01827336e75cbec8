"""Which distribution shipped a file, and what kind of file it is.

The build's "top_level" map and the layer's own *.dist-info feed ci.site.owners, so the budget also
attributes files in a layer it did not build (a baseline, a test zip).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from ci.budget.zips import ZipContents
from ci.site.owners import Owners, canonical
from ci.site.tree import in_vendored_libs
from ci.zipsafe import open_zip

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


def category(path: str) -> str:
    """One of CATEGORIES. Metadata and vendored libraries are judged by folder, the rest by suffix."""
    folders = path.split("/")[:-1]
    name = path.rsplit("/", 1)[-1]
    if any(folder.endswith((".dist-info", ".egg-info")) for folder in folders):
        return METADATA
    if in_vendored_libs(path):
        return VENDORED_LIBRARIES
    if name.endswith(".pyc"):
        return BYTECODE
    if name.endswith((".py", ".pyi")):
        return PYTHON_SOURCE
    if _SHARED_OBJECT.search(name):
        return EXTENSION_MODULES
    return DATA


class Attributor:
    """Maps layer paths to distribution names (as the build report spells them when it can).

    The evidence and its precedence are ci.site.owners'; this adds the budget's spelling of a
    name and "(unattributed)" for a file no evidence claims.
    """

    def __init__(
        self, layer: ZipContents, top_level: Mapping[str, str] | None = None, names: Sequence[str] = ()
    ) -> None:
        self._display: dict[str, str] = {canonical(name): name for name in names}
        with open_zip(layer.path, "rebuild it: `python -m ci build`") as archive:  # one opening for every read
            self._owners = Owners.of_entries(
                [entry.path for entry in layer.entries], archive.read, top_level=top_level, names=names
            )
        self.versions: dict[str, str] = {}  # distribution -> version, from *.dist-info folder names
        for dist in self._owners.dists:
            if dist.site == LAYER_PREFIX.rstrip("/") and dist.version:
                self.versions[self._name(dist.name)] = dist.version

    def _name(self, distribution: str) -> str:
        return self._display.setdefault(canonical(distribution), canonical(distribution))

    def distribution(self, path: str) -> str:
        if not path.startswith(LAYER_PREFIX):
            return UNATTRIBUTED
        owner = self._owners.distribution(path)
        return UNATTRIBUTED if owner is None else self._name(owner)
