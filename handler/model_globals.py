"""The allow-list of globals a model bundle may reference, read from model_globals.txt beside this file.

No rule about packages makes unpickling safe, so the list is exact (module, qualname) pairs; the file ships in
function.zip and the pipeline and training read the same file.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

ALLOWED_GLOBALS_FILE = Path(__file__).with_name("model_globals.txt")
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class AllowListError(ValueError):
    """The allow-list file itself is malformed: a packaging mistake, never a reason to load anyway."""


def parse_allowed_globals(text: str, origin: str) -> frozenset[tuple[str, str]]:
    """Lines of "module qualname"; blank lines and # comments ignored; anything else is an error."""
    pairs = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or not all(_DOTTED.fullmatch(part) for part in parts):
            raise AllowListError(
                f"{origin}:{number}: {raw.strip()!r} is not 'module qualname' (e.g. 'numpy dtype'); fix that line"
            )
        pairs.add((parts[0], parts[1]))
    return frozenset(pairs)


@lru_cache(maxsize=4)
def allowed_globals(path: Path = ALLOWED_GLOBALS_FILE) -> frozenset[tuple[str, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AllowListError(f"cannot read the model allow-list {path}: {exc.strerror or exc}") from exc
    return parse_allowed_globals(text, str(path))


def display(module: str, name: str) -> str:
    """How a pair is written in the file, so a message can be pasted into it."""
    return f"{module} {name}"
