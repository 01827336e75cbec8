"""Where the ABI check reads from: a directory as is, or the layer zip unpacked (once per zip, checked against it)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ci import unpacked_layers


@contextmanager
def unpacked(layer_zip: Path, layers: Path) -> Iterator[Path]:
    """The zip's contents, held for the block: the copy under `layers` (ci/unpacked_layers.py), checked entry by
    entry against the zip (refused entries and bad CRCs stop there, naming the entry). The zip is what ships."""
    with unpacked_layers.reading(layers, layer_zip, "rebuild it with `python -m ci build`, or pass --tree DIR") as root:
        yield root
