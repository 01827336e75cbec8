"""Reading pip-tools files: the compiled lock (pins, hashes, `# via` annotations) and the `.in` inputs.

Line numbers are kept so every problem can point at the exact line to change.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ci.errors import PipelineError


@dataclass
class Pin:
    """One requirement line of a lock (`name==version \\` + its `--hash` lines + `# via` comments)."""

    name: str  # canonical (PEP 503) name
    text: str  # the requirement as written, without hashes
    line: int  # 1-based line number of the requirement
    requirement: Requirement | None  # None for lines pip would take but packaging cannot parse (-e, URLs)
    hashes: list[str] = field(default_factory=list)  # "sha256:<hex>"
    via: list[str] = field(default_factory=list)  # "-r requirements.in", "joblib", "-c ../x.txt", ...

    @property
    def version(self) -> str | None:
        """The pinned version when the line is an exact `==` pin, else None."""
        if self.requirement is None or self.requirement.url:
            return None
        specs = list(self.requirement.specifier)
        if len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version:
            return specs[0].version
        return None


@dataclass
class LockFile:
    path: Path
    pins: dict[str, Pin]  # canonical name -> pin
    options: list[tuple[int, str]]  # (line, text) of option lines (--index-url, -e ...)

    def display(self, root: Path) -> str:
        return display_path(self.path, root)


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


def read_lock(path: Path) -> LockFile:
    if not path.is_file():
        raise PipelineError(f"{path} not found", "create it with `python -m ci lock`")
    pins: dict[str, Pin] = {}
    options: list[tuple[int, str]] = []
    current: Pin | None = None
    in_via = False
    for number, text in _logical_lines(path.read_text()):
        stripped = text.strip()
        if not stripped:
            current, in_via = None, False
            continue
        if stripped.startswith("#"):
            comment = stripped.lstrip("#").strip()
            if current is None or not text.startswith((" ", "\t")):
                in_via = False
            elif comment.startswith("via"):
                rest = comment[3:].strip()
                in_via = not rest
                if rest:
                    current.via.append(rest)
            elif in_via and comment:
                current.via.append(comment)
            continue
        in_via = False
        if stripped.startswith("-"):
            options.append((number, stripped))
            current = None
            continue
        current = _parse_pin(stripped, number, path)
        pins[current.name] = current
    return LockFile(path=path, pins=pins, options=options)


def _parse_pin(text: str, number: int, path: Path) -> Pin:
    requirement_text, _, _rest = text.partition(" --hash")
    requirement_text = requirement_text.strip()
    hashes = [token.split("=", 1)[1] for token in text.split() if token.startswith("--hash=")]
    try:
        requirement: Requirement | None = Requirement(requirement_text)
        name = canonicalize_name(requirement.name) if requirement else requirement_text
    except InvalidRequirement:
        requirement, name = None, canonicalize_name(requirement_text.split("@")[0].split()[0])
    if requirement is None and not name:
        raise PipelineError(f"{path}:{number}: cannot read {text!r}", "regenerate it with `python -m ci lock`")
    return Pin(name=name, text=requirement_text, line=number, requirement=requirement, hashes=hashes)


def read_in(path: Path, cwd: Path, source_path: str | None = None) -> list[DirectRequirement]:
    """Direct requirements of an .in file, following `-r` includes (not `-c` constraints)."""
    if not path.is_file():
        raise PipelineError(f"{path} not found", "restore it (it lists the direct requirements)")
    shown = source_path or display_path(path, cwd)
    found: list[DirectRequirement] = []
    for number, text in _logical_lines(path.read_text()):
        stripped = _strip_comment(text)
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
    parts = shlex.split(text)
    if "=" in parts[0]:
        option, value = parts[0].split("=", 1)
        return option, value
    return parts[0], (parts[1] if len(parts) > 1 else "")


def _strip_comment(text: str) -> str:
    stripped = text.strip()
    if stripped.startswith("#"):
        return ""
    return stripped.split(" #", 1)[0].strip()


def _logical_lines(content: str) -> list[tuple[int, str]]:
    """(first line number, text) with backslash continuations joined, as pip reads them."""
    result: list[tuple[int, str]] = []
    buffer: list[str] = []
    start = 0
    for number, line in enumerate(content.splitlines(), start=1):
        if not buffer:
            start = number
        if line.endswith("\\") and not line.lstrip().startswith("#"):
            buffer.append(line[:-1])
            continue
        buffer.append(line)
        result.append((start, " ".join(part.rstrip() for part in buffer) if len(buffer) > 1 else buffer[0]))
        buffer = []
    if buffer:
        result.append((start, " ".join(buffer)))
    return result


def display_path(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)
