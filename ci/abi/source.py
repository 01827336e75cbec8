"""Where the ABI check reads from: a directory as is, or the layer zip unpacked to a temp dir."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ci.zipsafe import open_zip


@contextmanager
def unpacked(layer_zip: Path) -> Iterator[Path]:
    """The zip's contents in a temporary directory, removed afterwards (the zip is what ships)."""
    fix = "rebuild it with `python -m ci build`, or pass --tree DIR"
    with open_zip(layer_zip, fix) as archive, tempfile.TemporaryDirectory(prefix="abi-") as tmp:
        root = Path(tmp)
        archive.extract_all(root)  # refused entries and bad CRCs stop here, naming the entry
        yield root
