"""A file:// simple index ([lock] index_url may be one): PEP 503 HTML pages read from disk.

pip and uv read such an index themselves; the wheel checks read PyPI's JSON API, so this turns a
local project page into the same shape (filename, sha256, requires-python, yanked). A test can then
build a whole index in a temporary directory and every command sees it as it would see PyPI.
"""

from __future__ import annotations

import html
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from ci.errors import PipelineError


def is_local(index_url: str) -> bool:
    return index_url.startswith("file:")


def project_files(index_url: str, name: str) -> list[dict[str, Any]]:
    """The files of project `name` (canonical) as PyPI's JSON API lists them."""
    root = Path(url2pathname(urlparse(index_url).path))
    page = root / name / "index.html"
    if page.is_file():
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8"))
        return parser.files
    if (root / name).is_dir():  # a bare directory of files is an index page too (pip reads it so)
        return [_file(path.name, None, False) for path in sorted((root / name).iterdir()) if path.is_file()]
    raise PipelineError(f"{name} is not on {index_url}", "check the package name")


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.files: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "a":
            return
        attributes = dict(attrs)
        href = attributes.get("href") or ""
        url, _, fragment = href.partition("#")
        filename = unquote(url.rstrip("/").rsplit("/", 1)[-1])
        if not filename:
            return
        digest = fragment.removeprefix("sha256=") if fragment.startswith("sha256=") else None
        entry = _file(filename, digest, "data-yanked" in attributes)
        if attributes.get("data-requires-python"):
            entry["requires-python"] = html.unescape(attributes["data-requires-python"] or "")
        self.files.append(entry)


def _file(filename: str, sha256: str | None, yanked: bool) -> dict[str, Any]:
    return {"filename": filename, "hashes": {"sha256": sha256} if sha256 else {}, "yanked": yanked}
