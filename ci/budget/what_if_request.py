"""What `budget --what-if` is asked about, resolved as `ci lock` would into a lock of its own, and why a
package has no wheel for the target. Only index requirements are accepted: URLs, paths, extra indexes or
`-e` would bypass the lock's hashes or run a package's setup.py."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import shlex
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.tags import Tag
from packaging.utils import canonicalize_name
from packaging.version import Version

from ci.config import ARCHITECTURES, Config, Target, load_policy
from ci.errors import CheckFailedError, PipelineError
from ci.layer.wheels import read_layer_lock
from ci.lock.check import newest_fitting, wheel_fits
from ci.lock.index import IndexFile, Project, SimpleIndex, sdist_version
from ci.lock.lockfile import LockFile, logical_lines, read_in, strip_comment
from ci.lock.resolve import compile_lock, lock_jobs
from ci.paths import BuildPaths
from ci.pip import LEGACY_ALIASES, target_tags

EXAMPLE = "--what-if pyarrow 'lightgbm==4.5.0' -r extra.in"


class SpecError(PipelineError):
    """A --what-if argument that is not a requirement: one line, cause and fix."""

    def __str__(self) -> str:
        return f"{self.problem}; fix: {self.fix}" if self.fix else self.problem


@dataclass(frozen=True)
class WhatIfRequest:
    specs: tuple[str, ...]  # requirements as given on the command line, normalised by packaging
    files: tuple[Path, ...]  # -r files, absolute
    requirements: tuple[Requirement, ...]  # every requested requirement, the files' included

    @property
    def names(self) -> list[str]:
        """Canonical names of what was asked for, in order, once each."""
        return list(dict.fromkeys(canonicalize_name(req.name) for req in self.requirements))

    def describe(self) -> str:
        return " ".join([*self.specs, *(f"-r {path.name}" for path in self.files)])

    def digest(self) -> str:
        """What decides the answer: the specs and the bytes of every -r file (and what they include)."""
        digest = hashlib.sha256("\0".join(self.specs).encode())
        for path in self.files:
            for included in sorted({req.file for req in read_in(path, path.parent)} | {path}):
                digest.update(f"\0{included}\0".encode() + included.read_bytes())
        return digest.hexdigest()


def parse_request(specs: Sequence[str], files: Sequence[Path], cwd: Path) -> WhatIfRequest:
    """Requirements and -r files (relative to `cwd`); anything else is a SpecError naming the argument."""
    given: list[str] = []
    paths: list[Path] = [(cwd / path).resolve() for path in files]
    for spec in specs:
        text = spec.strip()
        if text.startswith(("-r", "--requirement")):
            paths.append((cwd / _file_option(text)).resolve())
            continue
        given.append(str(_requirement(text)))
    if not given and not paths:
        raise SpecError("--what-if needs at least one requirement", f"name what to add, e.g. {EXAMPLE}")
    requirements = [Requirement(spec) for spec in given]
    for path in paths:
        if not path.is_file():
            raise SpecError(f"-r {path}: no such file", "give the path of a requirements file (relative to here)")
        _refuse_options(path)
        for direct in read_in(path, path.parent):
            requirements.append(_checked(direct.requirement, f"{path.name}:{direct.line}"))
    return WhatIfRequest(tuple(given), tuple(paths), tuple(requirements))


def _refuse_options(path: Path) -> None:
    """Every line of a -r file is a requirement, a comment or blank: options are refused, naming file:line."""
    for number, text in logical_lines(path.read_text()):
        line = strip_comment(text)
        if line.startswith("-"):
            option = line.split(maxsplit=1)[0].split("=", 1)[0]
            raise SpecError(
                f"--what-if -r {path}:{number}: {option!r} is an option, not a requirement (a -r file given to "
                "--what-if holds requirement lines only)",
                "remove the line; write each package as NAME or NAME==VERSION (the index is pipeline.toml's "
                "lock.index_url), and pass another file with its own -r",
            )


def _file_option(text: str) -> str:
    parts = shlex.split(text)
    option, _, value = parts[0].partition("=")
    if not value and option in ("-r", "--requirement") and len(parts) == 2:
        return parts[1]
    if option == "-r" and not value and len(parts) == 1 and len(text) > 2:
        return text[2:].strip()  # -rextra.in
    if value and len(parts) == 1:
        return value
    raise SpecError(f"--what-if {text!r} is not `-r FILE`", "write one requirements file per -r, e.g. -r extra.in")


def _requirement(text: str) -> Requirement:
    try:
        requirement = Requirement(text)
    except InvalidRequirement as exc:
        reason = str(exc).splitlines()[0].rstrip(".")
        raise SpecError(
            f"--what-if {text!r} is not a requirement ({reason})",
            f"write NAME, NAME==VERSION or NAME>=LOW,<HIGH, or -r FILE, e.g. {EXAMPLE}",
        ) from None
    return _checked(requirement, repr(text))


def _checked(requirement: Requirement, where: str) -> Requirement:
    if requirement.url:
        raise SpecError(
            f"--what-if {where}: {requirement.name} @ {requirement.url} is a direct URL",
            "name a release on the index (NAME==VERSION): the layer installs only hashed wheels from it",
        )
    return requirement


_MANYLINUX = re.compile(r"^manylinux_(\d+)_(\d+)_")
_LEGACY = {alias: (2, minor) for minor, alias in LEGACY_ALIASES.items()}
MAX_TAGS = 8


@dataclass(frozen=True)
class Unfit:
    """A requested package no version of which (within its specifier) the target can install."""

    name: str
    version: str | None  # the newest version the specifier allows, None if none is on the index
    message: str
    fix: str


def target_name(target: Target) -> str:
    return f"{target.runtime.name} {target.architecture} (glibc {target.glibc}, {target.runtime.python_tag})"


def glibc_needed(platform: str) -> tuple[int, int] | None:
    """(2, 28) for manylinux_2_28_x86_64 and (2, 17) for manylinux2014_x86_64; None for other platforms."""
    match = _MANYLINUX.match(platform)
    if match:
        return int(match[1]), int(match[2])
    return _LEGACY.get(platform.split("_", 1)[0])


def why_unfit(requirement: Requirement, index: SimpleIndex, target: Target) -> Unfit | None:
    """None when some version `requirement` allows has a wheel `target` loads; else what it has instead."""
    project = index.project(requirement.name)
    unfit = _judge(requirement, project, target)
    if unfit is not None and project.from_cache:  # never explain from a stale answer: ask the index again
        unfit = _judge(requirement, index.project(requirement.name, fresh=True), target)
    return unfit


def why_not_newest(name: str, resolved: str, index: SimpleIndex, target: Target) -> str | None:
    """When the resolve settled for an older release because the newest has no wheel for `target`: why."""
    project = index.project(name)
    releases = sorted({v for f, v in _versioned(project) if not (f.yanked or v.is_prerelease or v.is_devrelease)})
    if not releases or releases[-1] <= Version(resolved):
        return None
    newest = releases[-1]
    unfit = _judge(Requirement(f"{name}=={newest}"), project, target)
    return None if unfit is None else f"{name}: resolved {resolved}, not the newest {newest}: {unfit.message}"


def _judge(requirement: Requirement, project: Project, target: Target) -> Unfit | None:
    tags = target_tags(target)
    name = requirement.name
    versioned = _versioned(project)
    allowed = sorted({v for f, v in versioned if requirement.specifier.contains(v, prereleases=True)})
    if any(wheel_fits(f, target, tags) for f, v in versioned if v in allowed and not f.yanked):
        return None
    if not allowed:
        newest_any = max((v for _f, v in versioned), default="none")
        return Unfit(
            name,
            None,
            f"no release of {name} on the index matches {requirement.specifier or 'any version'}",
            f"ask for a version the index has (the newest is {newest_any})",
        )
    version = allowed[-1]
    wheels = [f for f, v in versioned if v == version and f.wheel is not None]
    newest = newest_fitting(project, target, tags)
    fitting = [f for f, v in versioned if v == newest and wheel_fits(f, target, tags)]
    alternative = (
        f"{name} {newest} is the newest version {target.runtime.name} {target.architecture} can load "
        f"({_shown_tags(fitting, target).removeprefix('its ').replace(' are tagged ', ': ')})"
        if newest is not None
        else f"no version of {name} has a wheel {target.runtime.name} {target.architecture} can load"
    )
    if not wheels:
        return Unfit(
            name,
            str(version),
            f"{name} {version} publishes no wheel (sdist only; the layer installs wheels only); {alternative}",
            _fix(name, newest, []),
        )
    others = _other_targets(wheels, target)
    have = _shown_tags(wheels, target)
    message = f"{name} {version} has no wheel for {target_name(target)}: {have}{_glibc_gap(wheels, target)}"
    if others:
        message += f"; {', '.join(others)} can load it"
    return Unfit(name, str(version), f"{message}; {alternative}", _fix(name, newest, others))


def _glibc_gap(wheels: list[IndexFile], target: Target) -> str:
    """ "; manylinux_2_28 needs glibc 2.28, python3.11's is 2.26" when the machine fits but glibc does not."""
    needed = sorted(
        {
            glibc
            for f in wheels
            for t in _tags(f)
            if t.platform.endswith(target.machine) and (glibc := glibc_needed(t.platform)) is not None
        }
    )
    if not needed or needed[0] <= target.glibc_tuple:
        return ""
    lowest = needed[0]
    return (
        f"; the oldest needs glibc {lowest[0]}.{lowest[1]}: {target.runtime.name}'s glibc {target.glibc} cannot load it"
    )


def _other_targets(wheels: list[IndexFile], current: Target) -> list[str]:
    """Every other Lambda runtime and architecture (at its own glibc) one of `wheels` fits, the
    current architecture first (a new runtime is a smaller move than a new machine)."""
    found = []
    for architecture in sorted(ARCHITECTURES, key=lambda arch: arch != current.architecture):
        for runtime in load_policy().values():
            target = Target(runtime=runtime, architecture=architecture, glibc=runtime.glibc)
            if (runtime.name, architecture) == (current.runtime.name, current.architecture):
                continue
            tags = target_tags(target)
            if any(wheel_fits(f, target, tags) for f in wheels):
                found.append(f"{runtime.name} {architecture} (glibc {runtime.glibc})")
    return found


def _fix(name: str, newest: Version | None, others: list[str]) -> str:
    ways = []
    if newest is not None:
        ways.append(f"ask for {name}=={newest} (or a range that allows it)")
    if others:
        runtime, architecture = others[0].split(" ")[:2]
        ways.append(
            f'move the target ([target] runtime = "{runtime}", architecture = "{architecture}" in pipeline.toml)'
        )
    return " or ".join(ways) if ways else f"drop {name}: no release of it can run on any Lambda Python runtime"


def _shown_tags(files: list[IndexFile], target: Target) -> str:
    """'its Linux wheels are tagged py3-none-manylinux_2_28_x86_64, ...': the Python and ABI the target
    runs first (cp311, abi3, py3), then its machine; Linux only when there is any."""
    accepted = target_tags(target)
    pythons = {(t.interpreter, t.abi) for t in accepted}
    tags = {t for f in files for t in _tags(f)}
    relevant = {t for t in tags if (t.interpreter, t.abi) in pythons} or tags
    linux = {t for t in relevant if "linux" in t.platform} or relevant
    shown = sorted(linux, key=lambda t: (not t.platform.endswith(target.machine), str(t)))
    more = f" (+{len(shown) - MAX_TAGS} more)" if len(shown) > MAX_TAGS else ""
    which = "Linux wheels" if any("linux" in t.platform for t in shown) else "wheels"
    return f"its {which} are tagged {', '.join(str(t) for t in shown[:MAX_TAGS])}{more}"


def _tags(file: IndexFile) -> frozenset[Tag]:
    wheel = file.wheel
    return wheel[1] if wheel is not None else frozenset()


def _versioned(project: Project) -> list[tuple[IndexFile, Version]]:
    """Every file of the project with its version (wheels and sdists); unparsable names left out."""
    found = []
    for file in project.files:
        wheel = file.wheel
        version = wheel[0] if wheel is not None else sdist_version(project.name, file.filename)
        if version is not None:
            found.append((file, version))
    return found


DEFAULT_INDEX = "https://pypi.org/simple"
UV_DETAIL_LINES = 8


@dataclass(frozen=True)
class Move:
    """An existing pin the resolver had to change to fit the request."""

    name: str
    before: str
    after: str
    required_by: tuple[str, ...]  # `# via` of the new lock


class UnresolvableError(CheckFailedError):
    """No lock satisfies requirements.in plus the request for this target; `unfit` says why, per package."""

    def __init__(self, problem: str, fix: str, unfit: list[Unfit]) -> None:
        super().__init__(problem, fix)
        self.unfit = unfit


def index_for(config: Config, paths: BuildPaths) -> SimpleIndex:
    """The configured index; PyPI's answers share `ci lock`'s cache, any other index gets its own."""
    url = config.lock.index_url
    if url.rstrip("/") == DEFAULT_INDEX:
        return SimpleIndex(url, paths.cache / "pypi-simple")
    return SimpleIndex(url, paths.cache / "index" / hashlib.sha256(url.encode()).hexdigest()[:16])


def resolve(config: Config, paths: BuildPaths, request: WhatIfRequest, workdir: Path) -> LockFile:
    """The what-if lock (workdir/requirements-layer.txt), read as strictly as the build reads its own. Its input,
    what-if.in, is the layer's requirements.in plus the request, for the same resolver as `ci lock`."""
    workdir.mkdir(parents=True, exist_ok=True)
    lines = [
        "# python -m ci budget --what-if: the layer's requirements plus what was asked about",
        f"-r {config.lock.requirements_in.resolve()}",
        *request.specs,
        *(str(requirement) for requirement in request.requirements[len(request.specs) :]),  # the files', checked
    ]
    (workdir / "what-if.in").write_text("\n".join(lines) + "\n")
    output = workdir / "requirements-layer.txt"
    shutil.copyfile(config.lock.layer_lock, output)  # the current pins, preferred by the resolver
    what_if = dataclasses.replace(lock_jobs(config)[0], cwd=workdir, inputs=("what-if.in",), output=output)
    try:
        compile_lock(what_if, config.lock.index_url, uv_cache=paths.cache / "uv")
    except PipelineError as exc:
        index = index_for(config, paths)
        unfit = [found for req in request.requirements if (found := why_unfit(req, index, config.target)) is not None]
        if unfit:
            problem, fix = "\n".join(u.message for u in unfit), "; ".join(f"{u.name}: {u.fix}" for u in unfit)
            raise UnresolvableError(problem, fix, unfit) from None
        detail = "\n".join(exc.problem.splitlines()[1 : 1 + UV_DETAIL_LINES])
        raise UnresolvableError(
            f"requirements.in + {request.describe()} has no solution for {config.target.runtime.name} "
            f"{config.target.architecture}:\n{detail}",
            "loosen the requirement uv names (or the one in requirements.in it conflicts with), then ask again",
            [],
        ) from None
    return read_layer_lock(output)


def moved_pins(current: LockFile, projected: LockFile) -> list[Move]:
    """Pins of the current lock whose version the what-if lock changes."""
    return [
        Move(name, str(pin.version), str(after.version), tuple(after.via))
        for name, pin in sorted(current.pins.items())
        if (after := projected.pins.get(name)) is not None and after.version != pin.version
    ]


def held_back(config: Config, paths: BuildPaths, request: WhatIfRequest, projected: LockFile) -> list[str]:
    """For each requested package the resolve settled below the newest release of: why, if for the target."""
    index = index_for(config, paths)
    pins = [pin for name in request.names if (pin := projected.pins.get(name)) is not None and pin.version]
    notes = [why_not_newest(pin.name, str(pin.version), index, config.target) for pin in pins]
    return [note for note in notes if note]
