"""PyPI for the Lambda target: the wheels it accepts (manylinux up to its runtime's glibc, then pure Python), the files
an index publishes (PEP 691 JSON or file:// pages, cached in build/cache/ and refetched before a check fails on them),
and pip run with only the configured index (no config file or PIP_* variable)."""

import contextlib
import json
import logging
import os
import shlex
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from ci.config import Target, version_tuple
from ci.errors import PipelineError

logger = logging.getLogger(__name__)

LEGACY_ALIASES = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
OLDEST_MANYLINUX_MINOR = 5
LEGACY_ARCHES_2010 = {"x86_64", "i686"}  # manylinux1/2010 never existed for aarch64


def target_platforms(target: Target) -> list[str]:
    major, minor = target.glibc_tuple
    machine = target.machine
    platforms = []
    for glibc_minor in range(minor, OLDEST_MANYLINUX_MINOR - 1, -1):
        platforms.append(f"manylinux_{major}_{glibc_minor}_{machine}")
        alias = LEGACY_ALIASES.get(glibc_minor)
        if alias and (glibc_minor == 17 or machine in LEGACY_ARCHES_2010):
            platforms.append(f"{alias}_{machine}")
    return platforms


def target_tags(target: Target) -> set[Tag]:
    """Every tag a wheel may carry and still install and load on `target`."""
    version = version_tuple(target.runtime.python)
    python_tag = target.runtime.python_tag
    platforms = target_platforms(target)
    tags = set(cpython_tags(python_version=version, abis=[python_tag, "abi3", "none"], platforms=platforms))
    tags |= set(compatible_tags(python_version=version, interpreter=python_tag, platforms=platforms))
    return tags


def target_options(target: Target) -> list[str]:
    """Binary wheels for `target`: every platform tag its glibc accepts, its Python version and ABI."""
    platforms = [arg for platform in target_platforms(target) for arg in ("--platform", platform)]
    return [
        "--only-binary=:all:", *platforms, "--implementation", "cp",
        "--python-version", target.runtime.python, "--abi", target.runtime.python_tag,
    ]  # fmt: skip


def run_pip(subcommand: str, target: Target, index_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`pip <subcommand>` for `target` from `index_url` alone, without PIP_* variables or a configuration file."""
    command = [
        sys.executable, "-m", "pip", subcommand, "--isolated", "--disable-pip-version-check", "--quiet",
        "--index-url", index_url, *target_options(target), *args,
    ]  # fmt: skip
    logger.debug(f"run: {shlex.join(command)}")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull  # no configuration file is read
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False)


@dataclass(frozen=True)
class IndexFile:
    filename: str
    sha256: str | None
    requires_python: str | None
    yanked: bool

    @property
    def wheel(self) -> tuple[Version, frozenset[Any]] | None:
        """(version, tags) of a wheel file; None for sdists and unparsable names."""
        try:  # an sdist's name is an InvalidWheelFilename too
            _name, version, _build, tags = parse_wheel_filename(self.filename)
        except (InvalidWheelFilename, InvalidVersion):
            return None
        return version, tags


@dataclass(frozen=True)
class Project:
    name: str
    files: list[IndexFile]
    from_cache: bool

    def files_of(self, version: str) -> list[IndexFile]:
        """Every file (wheels and sdists) of `version`, matched by normalised version."""
        wanted = Version(version)
        return [
            file
            for file in self.files
            if (file.wheel[0] if file.wheel is not None else sdist_version(self.name, file.filename)) == wanted
        ]


class NotCachedError(Exception):
    """Offline, and this project was never fetched."""


class SimpleIndex:
    def __init__(self, index_url: str, cache_dir: Path, refresh: bool = False, offline: bool = False) -> None:
        self.index_url = index_url.rstrip("/")
        self.cache_dir = cache_dir
        self.refresh = refresh
        self.offline = offline
        self.requests = 0
        self._fresh: dict[str, Project] = {}

    def project(self, name: str, fresh: bool = False) -> Project:
        """The project's files; from the cache unless `fresh` (or --refresh) asks for the network."""
        name = canonicalize_name(name)
        if name in self._fresh:
            return self._fresh[name]
        cache = self.cache_dir / f"{name}.json"
        if cache.is_file() and (self.offline or not (fresh or self.refresh)):
            with contextlib.suppress(json.JSONDecodeError, KeyError):  # a damaged cache entry is refetched
                project = _project(name, json.loads(cache.read_text()), from_cache=not self.offline)  # offline: fresh
                logger.debug(f"index cache hit: {cache}")
                return project
        if self.offline:
            raise NotCachedError(name)
        logger.debug(f"index cache miss: {name}, fetching {self.index_url}/{name}/")
        payload = self._fetch(name)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload))
        tmp.replace(cache)
        self._fresh[name] = _project(name, payload, from_cache=False)
        return self._fresh[name]

    def _fetch(self, name: str) -> dict[str, Any]:
        if self.index_url.startswith("file:"):  # a file:// index: HTML pages (or bare directories) on disk
            root = Path(url2pathname(urlparse(self.index_url).path)) / name
            if (root / "index.html").is_file():
                parser = _Links()
                parser.feed((root / "index.html").read_text(encoding="utf-8"))
                return {"files": parser.files}
            if root.is_dir():  # a bare directory of files is an index page too (pip reads it so)
                return {"files": [_file(path.name, None, False) for path in sorted(root.iterdir()) if path.is_file()]}
            raise PipelineError(f"{name} is not on {self.index_url}", "check the package name")
        url = f"{self.index_url}/{name}/"
        request = urllib.request.Request(
            url, headers={"Accept": "application/vnd.pypi.simple.v1+json", "User-Agent": "forgetting-curve-ci"}
        )
        self.requests += 1
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise PipelineError(f"{name} is not on {self.index_url}", "check the package name") from exc
            raise PipelineError(f"{url} answered HTTP {exc.code}", "retry later or check lock.index_url") from exc
        except (urllib.error.URLError, TimeoutError, json.JSONDecodeError) as exc:
            raise PipelineError(
                f"cannot read {url} ({exc})",
                "check the network (the wheel check needs PyPI's JSON API once; answers are cached in build/cache)",
            ) from exc
        return {"files": body.get("files", [])}


def _project(name: str, payload: dict[str, Any], from_cache: bool) -> Project:
    files = [
        IndexFile(
            filename=entry["filename"],
            sha256=(entry.get("hashes") or {}).get("sha256"),
            requires_python=entry.get("requires-python"),
            yanked=bool(entry.get("yanked")),
        )
        for entry in payload["files"]
    ]
    return Project(name=name, files=files, from_cache=from_cache)


def sdist_version(name: str, filename: str) -> Version | None:
    suffix = next((suffix for suffix in (".tar.gz", ".zip", ".tar.bz2") if filename.endswith(suffix)), None)
    sdist_name, _, version = filename.removesuffix(suffix or "").rpartition("-")
    if suffix is None or canonicalize_name(sdist_name) != name:
        return None
    with contextlib.suppress(InvalidVersion):
        return Version(version)
    return None


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.files: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)  # values come unescaped
        url, _, fragment = (attributes.get("href") or "").partition("#")
        filename = unquote(url.rstrip("/").rsplit("/", 1)[-1])
        if tag == "a" and filename:
            digest = fragment.removeprefix("sha256=") if fragment.startswith("sha256=") else None
            requires_python = attributes.get("data-requires-python") or None
            self.files.append(_file(filename, digest, "data-yanked" in attributes, requires_python))


def _file(filename: str, sha256: str | None, yanked: bool, requires_python: str | None = None) -> dict[str, Any]:
    hashes = {"sha256": sha256} if sha256 else {}
    return {"filename": filename, "hashes": hashes, "yanked": yanked, "requires-python": requires_python}
