"""Which names a layer tree makes importable: its top-level packages and its extension modules."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from ci.site.tree import in_vendored_libs, walk_files

# name.cpython-311-x86_64-linux-gnu.so, name.abi3.so, name.so
_EXTENSION = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(\.(cpython-[^.]+|abi3))?\.so$")
_NOT_PACKAGES = (".dist-info", ".data", ".libs", ".egg-info")


def top_level_modules(site: Path) -> list[str]:
    names = set()
    for entry in site.iterdir():
        name = entry.name
        if entry.is_dir():
            is_package = name.isidentifier() and not name.endswith(_NOT_PACKAGES) and name != "__pycache__"
            if is_package and any(child.suffix in (".py", ".so", ".pyc") for child in entry.rglob("*")):
                names.add(name)
        elif name.endswith(".py") and name[:-3].isidentifier():
            names.add(name[:-3])
        elif name.endswith(".pyc") and name[:-4].isidentifier():
            names.add(name[:-4])
        else:
            match = _EXTENSION.match(name)
            if match:
                names.add(match.group("name"))
    return sorted(names)


def extension_modules(site: Path) -> dict[str, str]:
    """Dotted module name -> path (relative to site) of every importable extension module."""
    found = {}
    for path in walk_files(site):
        rel = path.relative_to(site).as_posix()
        module = module_for_path(rel)
        if module is not None and path.suffix == ".so" and not in_vendored_libs(rel):
            found[module] = rel
    return dict(sorted(found.items()))


def module_for_path(rel: str) -> str | None:
    """The module a file would be imported as (`a/b/__init__.py` -> a.b), or None if not importable."""
    parts = PurePosixPath(rel).parts
    if not parts or any(not part.isidentifier() for part in parts[:-1]):
        return None
    name = parts[-1]
    if name.endswith(".py"):
        stem = name[:-3]
    elif name.endswith(".pyc") and parts[:-1][-1:] != ("__pycache__",):
        stem = name[:-4]
    else:
        match = _EXTENSION.match(name)
        if match is None:
            return None
        stem = match.group("name")
    if not stem.isidentifier():
        return None
    dotted = [*parts[:-1]] if stem == "__init__" else [*parts[:-1], stem]
    return ".".join(dotted) if dotted else None


def paths_of_module(module: str) -> tuple[str, ...]:
    """Path prefixes (relative to site) where `module` would live: a/b.py, a/b/..., a/b.<tag>.so."""
    base = module.replace(".", "/")
    return (f"{base}.py", f"{base}/", f"{base}.")
