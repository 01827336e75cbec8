"""The one reader of pip-tools lock files and their .in inputs, so a lock means the same to `ci lock`, the layer build
and `ci pins`. It judges nothing: a loose, unhashed or unreadable line is kept, with its line number, for the caller."""

import functools
import hashlib
import shlex
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import Specifier
from packaging.utils import canonicalize_name

from ci.errors import PipelineError

COMPILE_COMMAND = "python -m ci lock"
RELOCK = f"`{COMPILE_COMMAND}`"


@dataclass(frozen=True)
class Pin:
    """One requirement line of a lock (`name==version \\` + its `--hash` lines + `# via` comments)."""

    name: str  # canonical (PEP 503) name
    text: str  # the requirement as written, without hashes and comments
    line: int  # 1-based line number of the requirement
    requirement: Requirement | None  # None for lines pip would take but packaging cannot parse (-e, paths)
    error: str | None = None  # why packaging could not parse it
    hashes: tuple[str, ...] = ()  # "sha256:<hex>"
    via: tuple[str, ...] = ()  # "-r requirements.in", "joblib", "-c ../x.txt", ...

    @property
    def specifiers(self) -> list[Specifier]:
        return sorted(self.requirement.specifier, key=str) if self.requirement else []

    @property
    def specifier(self) -> str:
        return str(self.requirement.specifier) if self.requirement else ""

    @property
    def operator(self) -> str | None:
        """The operator of the only specifier ("==", ">=", ...), None for none or several."""
        specifiers = self.specifiers
        return specifiers[0].operator if len(specifiers) == 1 else None

    @property
    def version(self) -> str | None:
        """The pinned version when the line is an exact `==` (or `===`) pin, else None."""
        if self.requirement is None or self.requirement.url or self.operator not in ("==", "==="):
            return None
        version = self.specifiers[0].version
        return None if "*" in version else version

    @property
    def marker(self) -> str | None:
        return str(self.requirement.marker) if self.requirement and self.requirement.marker else None

    @property
    def url(self) -> str | None:
        return (self.requirement.url or None) if self.requirement else None

    @property
    def sha256(self) -> frozenset[str]:
        """The hex digests of the sha256 hashes: what a downloaded wheel must match."""
        return frozenset(h.removeprefix("sha256:") for h in self.hashes if h.startswith("sha256:"))


@dataclass(frozen=True)
class LockFile:
    path: Path
    entries: tuple[Pin, ...]  # every requirement line, in file order
    options: tuple[tuple[int, str], ...]  # (line, text) of option lines (--index-url, -e ...)
    digest: str  # sha256 of the file: the key of everything cached per lock
    display: str  # how messages name the file, e.g. requirements-layer.txt

    @functools.cached_property
    def pins(self) -> dict[str, Pin]:  # canonical name -> pin (the last line wins)
        return {pin.name: pin for pin in self.entries}

    def get(self, name: str) -> Pin | None:
        return self.pins.get(canonicalize_name(name))

    @property
    def versions(self) -> dict[str, str | None]:
        return {name: pin.version for name, pin in self.pins.items()}


def read_lock(path: Path, display: str | None = None) -> LockFile:
    """Every requirement line of `path` with its hashes and annotations; option lines apart."""
    if not path.is_file():
        raise PipelineError(f"{path} not found", f"create it with {RELOCK}")
    content = path.read_text()
    found: list[tuple[Pin, list[str]]] = []
    options: list[tuple[int, str]] = []
    via: list[str] | None = None  # the open pin's annotations; a blank or option line closes it
    listing = False  # after a bare `# via`, each indented comment names one
    for number, text in logical_lines(content):
        stripped = text.strip()
        if via is not None and stripped.startswith("#") and text.startswith((" ", "\t")):
            comment = stripped.lstrip("#").strip()
            if comment.startswith("via"):
                listing = comment == "via"
                if not listing:
                    via.append(comment[3:].strip())
            elif listing and comment:
                via.append(comment)
            continue
        listing = False
        if stripped.startswith("-"):
            options.append((number, stripped))
        if not stripped or stripped.startswith("-"):
            via = None
        elif not stripped.startswith("#"):
            via = []
            found.append((_parse_pin(strip_comment(stripped), number, path), via))
    entries = tuple(replace(pin, via=tuple(annotations)) for pin, annotations in found)
    digest = hashlib.sha256(content.encode()).hexdigest()
    return LockFile(path, entries, tuple(options), digest, display or path.name)


def _parse_pin(text: str, number: int, path: Path) -> Pin:
    requirement_text = text.partition(" --hash")[0].strip()
    hashes = tuple(token.split("=", 1)[1] for token in text.split() if token.startswith("--hash="))
    try:
        requirement = Requirement(requirement_text)
    except InvalidRequirement as exc:
        words = requirement_text.split("@")[0].split()
        if not words:
            raise PipelineError(f"{path}:{number}: cannot read {text!r}", f"regenerate it with {RELOCK}") from exc
        return Pin(canonicalize_name(words[0]), requirement_text, number, None, error=str(exc), hashes=hashes)
    return Pin(canonicalize_name(requirement.name), requirement_text, number, requirement, hashes=hashes)


def strip_comment(text: str) -> str:
    """The line without its comment, as pip reads it: `#` starts one at the line's start or after a space."""
    stripped = text.strip()
    return "" if stripped.startswith("#") else stripped.split(" #", 1)[0].strip()


def logical_lines(content: str) -> list[tuple[int, str]]:
    """(first line number, text) with backslash continuations joined as pip does; a comment never continues."""
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


@dataclass(frozen=True)
class DirectRequirement:
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
            words = [*shlex.split(stripped), ""]  # "" when the option has no value
            option, equals, value = words[0].partition("=")
            value = value if equals else words[1]
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


def display_path(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)
