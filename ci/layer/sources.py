"""What a build was made from, by digest (handler package, model, locks, config file): the deploy gate hashes them
again and refuses zips whose sources changed since; relative paths, so a moved checkout with the same bytes passes."""

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ci.config import Config
from ci.paths import BuildPaths
from ci.reports import sha256_file


def handler_files(package: Path) -> list[Path]:
    """The files function.zip is made of: the package's *.py and *.txt data, without tests and caches."""
    return [
        path
        for path in sorted([*package.rglob("*.py"), *package.rglob("*.txt")])
        if not {"__pycache__", "tests"} & set(path.relative_to(package).parts) and not path.name.startswith("test_")
    ]


BUILD_DIR = "$BUILD"  # the prefix of a recorded path under the build directory


def place(path: Path, root: Path, build: Path) -> str:
    """How `path` is recorded: under the build directory, under the repository, else absolute."""
    path = path.resolve()
    if path.is_relative_to(build.resolve()):
        return f"{BUILD_DIR}/{path.relative_to(build.resolve()).as_posix()}"
    if path.is_relative_to(root.resolve()):
        return path.relative_to(root.resolve()).as_posix()
    return str(path)


def locate(name: str, root: Path, build: Path) -> Path:
    """The inverse of place() in this checkout (an absolute name, as older builds wrote, stays as it is)."""
    if name == BUILD_DIR or name.startswith(BUILD_DIR + "/"):
        return build / name.removeprefix(BUILD_DIR).lstrip("/")
    return root / name


def record(config: Config, paths: BuildPaths) -> dict[str, Any]:
    """{"handler": {dir, files: {relative path: sha256}}, "files": {place: sha256 or None}}."""
    package = config.root / config.function.handler.split(".")[0]  # function.handler = <package>.<module>.<fn>
    files = [config.file, config.lock.layer_lock, config.lock.training_lock, paths.model]
    return {
        "handler": {
            "dir": place(package, config.root, paths.build),
            "files": {path.relative_to(package).as_posix(): sha256_file(path) for path in handler_files(package)},
        },
        # A missing one (no model yet) is recorded too: its appearing later makes the build stale as well.
        "files": {
            place(path, config.root, paths.build): sha256_file(path) if path.is_file() else None for path in files
        },
    }


def changes(recorded: dict[str, Any], root: Path, build: Path) -> list[str]:
    """What differs now from a record(), read in the checkout at `root`: one phrase per changed source."""
    files = recorded.get("files") or {}
    existing = {name: path for name in files if (path := locate(name, root, build)).is_file()}
    handler = recorded.get("handler") or {}
    package = locate(str(handler.get("dir", "")), root, build)
    now = {path.relative_to(package).as_posix(): path for path in handler_files(package)} if package.is_dir() else {}
    return _differences(files, existing, str) + _differences(handler.get("files") or {}, now, package.joinpath)


def _differences(
    before: Mapping[str, str | None], now: Mapping[str, Path], shown: Callable[[str], object]
) -> list[str]:
    found = []
    for name in sorted(set(before) | set(now)):
        digest, path = before.get(name), now.get(name)
        if path is None and digest is not None:
            found.append(f"{shown(name)} was removed")
        elif path is not None and digest is None:
            found.append(f"{shown(name)} was added")
        elif path is not None and sha256_file(path) != digest:
            found.append(f"{shown(name)} changed")
    return found
