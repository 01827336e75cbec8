"""Reading pip-tools locks (`name==version \\ --hash=...`) into exact pins, remembering lines.

A lock is only a lock when every entry is an exact `==` pin; anything else (`>=`, `~=`, a
wildcard, a URL, no specifier) is kept with its line so the failure can point at it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from packaging.specifiers import Specifier, SpecifierSet

from ci.errors import PipelineError


@dataclass(frozen=True)
class Entry:
    """One requirement line of a lock file."""

    name: str  # canonical (PEP 503) name
    spec: str  # the specifier as written, e.g. "==1.3.2" or ">=1.26"
    line: int
    text: str  # the requirement as written, without hashes
    marker: str | None = None
    url: str | None = None

    @property
    def pinned_version(self) -> str | None:
        """The exact version when the entry is a single `==` pin without wildcard, else None."""
        specifiers = self._specifiers()
        if len(specifiers) != 1 or specifiers[0].operator != "==" or "*" in specifiers[0].version:
            return None
        return specifiers[0].version

    def why_not_pinned(self) -> str:
        specifiers = self._specifiers()
        if not specifiers:
            return "is not pinned (no version)" if not self.url else f"is a URL ({self.url}), not a version pin"
        if any("*" in item.version for item in specifiers):
            return f"uses a wildcard ({self.spec}), not an exact `==` pin"
        operators = ", ".join(f"`{op}`" for op in sorted({item.operator for item in specifiers}))
        return f"uses {operators} ({self.spec}), not an exact `==` pin"

    def _specifiers(self) -> list[Specifier]:
        return sorted(SpecifierSet(self.spec), key=str)


@dataclass
class Lock:
    path: Path
    display: str  # how messages name the file, e.g. requirements-layer.txt
    entries: dict[str, Entry] = field(default_factory=dict)

    def get(self, name: str) -> Entry | None:
        return self.entries.get(canonical(name))


def canonical(name: str) -> str:
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(name))


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Join backslash continuations and drop comments, keeping the first physical line number."""
    lines: list[tuple[int, str]] = []
    start, buffer = 0, ""
    for number, raw in enumerate(text.splitlines(), start=1):
        if not buffer:
            start = number
        stripped = raw.split(" #", 1)[0] if not raw.lstrip().startswith("#") else ""
        if stripped.rstrip().endswith("\\"):
            buffer += stripped.rstrip()[:-1] + " "
            continue
        buffer += stripped
        if buffer.strip():
            lines.append((start, buffer.strip()))
        buffer = ""
    if buffer.strip():
        lines.append((start, buffer.strip()))
    return lines


def read_lock(path: Path, display: str | None = None) -> Lock:
    """Parse `path`; raise PipelineError if it is missing or a line is not a requirement."""
    from packaging.requirements import InvalidRequirement, Requirement

    display = display or path.name
    if not path.is_file():
        raise PipelineError(f"{display} not found ({path})", "run `python -m ci lock` to write the locks")
    lock = Lock(path=path, display=display)
    for number, line in _logical_lines(path.read_text()):
        if line.startswith("-"):  # options: -c/-r/--index-url/--hash-only lines
            continue
        requirement_text = " ".join(word for word in line.split() if not word.startswith("--hash"))
        try:
            requirement = Requirement(requirement_text)
        except InvalidRequirement as exc:
            raise PipelineError(
                f"{display}:{number}: {requirement_text!r} is not a requirement ({exc})",
                "regenerate the lock with `python -m ci lock`",
            ) from exc
        name = canonical(requirement.name)
        spec = str(requirement.specifier)
        lock.entries[name] = Entry(
            name=name,
            spec=spec,
            line=number,
            text=requirement_text,
            marker=str(requirement.marker) if requirement.marker else None,
            url=requirement.url or None,
        )
    return lock
