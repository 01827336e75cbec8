"""What `budget --what-if` is asked about: requirements (`pyarrow`, `lightgbm==4.5.0`) and `-r FILE`s.

Checked before anything runs. Only index requirements are accepted, and a -r file may hold no option lines:
URLs, paths, extra indexes or `-e` would bypass the lock's hashes or run a package's setup.py.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ci.errors import PipelineError
from ci.lock.files import read_in
from ci.lock.lockfile import logical_lines, strip_comment

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


def write_in_file(workdir: Path, requirements_in: Path, request: WhatIfRequest) -> Path:
    """what-if.in: the layer's requirements.in plus the request, for the same resolver as `ci lock`."""
    workdir.mkdir(parents=True, exist_ok=True)
    lines = [
        "# python -m ci budget --what-if: the layer's requirements plus what was asked about",
        f"-r {requirements_in.resolve()}",
        *request.specs,
        *(str(requirement) for requirement in request.requirements[len(request.specs) :]),  # the files', checked
    ]
    path = workdir / "what-if.in"
    path.write_text("\n".join(lines) + "\n")
    return path
