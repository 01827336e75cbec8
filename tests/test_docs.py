"""The README is a front door that stays short, and every link from it and docs/ leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path

from ci.paths import REPO_ROOT

README_MAX_LINES = 250
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def documents() -> list[Path]:
    return [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


def test_readme_is_a_front_door() -> None:
    lines = (REPO_ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines: move reference text to docs/"


def test_every_relative_link_resolves() -> None:
    broken = []
    for document in documents():
        for target in LINK.findall(document.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (document.parent / target).exists():
                broken.append(f"{document.relative_to(REPO_ROOT)} -> {target}")
    assert not broken, broken
