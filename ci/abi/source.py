"""Where the ABI check reads from: a directory as is, or the layer zip unpacked to a temp dir."""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ci.errors import PipelineError


@contextmanager
def unpacked(layer_zip: Path) -> Iterator[Path]:
    """The zip's contents in a temporary directory, removed afterwards (the zip is what ships)."""
    if not layer_zip.is_file():
        raise PipelineError(f"{layer_zip} not found", "run `python -m ci build` first, or pass --tree DIR")
    try:
        archive = zipfile.ZipFile(layer_zip)
    except zipfile.BadZipFile as exc:
        raise PipelineError(f"{layer_zip} is not a zip file ({exc})", "rebuild it: `python -m ci build`") from exc
    with archive, tempfile.TemporaryDirectory(prefix="abi-") as tmp:
        root = Path(tmp)
        for member in archive.infolist():
            destination = (root / member.filename).resolve()
            if not destination.is_relative_to(root.resolve()):
                raise PipelineError(f"{layer_zip} has an entry outside the tree: {member.filename}", "rebuild it")
        archive.extractall(root)
        yield root
