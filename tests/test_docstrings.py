"""Module docstrings say what a module is for and why, in a few lines; history and decisions live in docs/."""

from __future__ import annotations

import ast
import re

import pytest

from ci.paths import REPO_ROOT

PACKAGES = ("ci", "handler", "training")
LONG_DOCSTRING_LINES = 6
MAX_LONG_IN_CI = 5
# Phrases that tell how the code came to be rather than what it does: they belong in CHANGELOG.md or docs/design.md.
HISTORY_PHRASES = ("used to", "the lead", "previously", "before this change")


def module_docstrings(package: str) -> dict[str, tuple[int, str]]:
    """Each module's docstring: the lines of its literal in the source (quotes included) and its text."""
    found = {}
    for path in sorted((REPO_ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        first = tree.body[0] if tree.body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
            assert first.end_lineno is not None
            lines = first.end_lineno - first.lineno + 1
            found[path.relative_to(REPO_ROOT).as_posix()] = (lines, first.value.value)
    return found


def test_few_long_module_docstrings_in_ci() -> None:
    long = {name: lines for name, (lines, _) in module_docstrings("ci").items() if lines > LONG_DOCSTRING_LINES}
    assert len(long) <= MAX_LONG_IN_CI, (
        f"{len(long)} ci/ module docstrings exceed {LONG_DOCSTRING_LINES} lines (at most {MAX_LONG_IN_CI}): "
        f"{dict(sorted(long.items(), key=lambda item: -item[1]))}; shorten them to what the module is for and why, "
        "measurements to docs/performance.md, decisions to docs/design.md"
    )


@pytest.mark.parametrize("package", PACKAGES)
def test_module_docstrings_hold_no_history(package: str) -> None:
    history = [
        f"{name}: {phrase!r}"
        for name, (_, text) in module_docstrings(package).items()
        for phrase in HISTORY_PHRASES
        if re.search(rf"\b{phrase}\b", text, re.IGNORECASE)
    ]
    assert not history, f"module docstrings that tell history (move it to CHANGELOG.md or docs/design.md): {history}"
