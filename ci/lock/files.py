"""Reading the `.in` inputs of pip-tools (the direct requirements), following `-r` includes, with line numbers."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ci.errors import PipelineError
from ci.lock.lockfile import logical_lines, strip_comment


@dataclass(frozen=True)
class DirectRequirement:
    """A requirement written in an .in file (or a file it includes with -r)."""

    requirement: Requirement
    file: Path
    line: int
    source: str  # how uv names the file in `# via`: "-r requirements.in", "-r training/requirements.in"

    @property
    def name(self) -> str:
        return canonicalize_name(self.requirement.name)


def read_in(path: Path, cwd: Path, source_path: str | None = None) -> list[DirectRequirement]:
    """Direct requirements of an .in file, following `-r` includes (not `-c` constraints)."""
    if not path.is_file():
        raise PipelineError(f"{path} not found", "restore it (it lists the direct requirements)")
    shown = source_path or display_path(path, cwd)
    found: list[DirectRequirement] = []
    for number, text in logical_lines(path.read_text()):
        stripped = strip_comment(text)
        if not stripped:
            continue
        if stripped.startswith("-"):
            option, value = _option(stripped)
            if option in ("-r", "--requirement") and value:
                nested_shown = (PurePosixPath(shown).parent / value).as_posix()
                found += read_in(path.parent / value, cwd, nested_shown)
            continue
        try:
            requirement = Requirement(stripped)
        except InvalidRequirement as exc:
            raise PipelineError(f"{path}:{number}: {stripped!r} is not a requirement ({exc})", "fix the line") from exc
        found.append(DirectRequirement(requirement, path, number, f"-r {shown}"))
    return found


def _option(text: str) -> tuple[str, str]:
    parts = [*shlex.split(text), ""]  # "" when the option has no value
    option, equals, value = parts[0].partition("=")
    return option, value if equals else parts[1]


def display_path(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)
