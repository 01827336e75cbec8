"""Read a zip's entries the way Lambda sizes it: the sum of every entry's uncompressed size.

Directory entries have file_size 0, so they add nothing, as on Lambda. Only the central
directory is read (no decompression), which is why the budget runs in well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ci.errors import PipelineError
from ci.zipsafe import open_zip


@dataclass(frozen=True)
class Entry:
    path: str  # as stored in the zip, e.g. python/numpy/__init__.py
    unzipped_bytes: int  # ZipInfo.file_size
    zipped_bytes: int  # ZipInfo.compress_size


@dataclass(frozen=True)
class ZipContents:
    """One zip Lambda unpacks: the function code or a layer."""

    name: str  # how reports call it: function.zip, layer.zip, or an extra layer's file name
    kind: str  # function | layer | extra layer
    path: Path
    entries: tuple[Entry, ...]  # files only, in zip order
    archive_bytes: int  # size of the .zip file itself

    @property
    def unzipped_bytes(self) -> int:
        return sum(entry.unzipped_bytes for entry in self.entries)

    @property
    def zipped_bytes(self) -> int:
        return sum(entry.zipped_bytes for entry in self.entries)


def read_zip(path: Path, name: str, kind: str, how_to_make: str, shown: Path | None = None) -> ZipContents:
    """The file entries of `path`; a missing or unreadable zip is an error naming the file
    (`shown`: the artifact `path` is a snapshot of, named in messages)."""
    if not path.is_file():
        raise PipelineError(f"{shown or path} not found: the budget needs the {name} Lambda will unpack", how_to_make)
    with open_zip(path, how_to_make, shown) as archive:  # refuses links, duplicates and escaping names
        files = archive.files
    entries = tuple(
        Entry(path=info.filename, unzipped_bytes=info.file_size, zipped_bytes=info.compress_size) for info in files
    )
    return ZipContents(name=name, kind=kind, path=path, entries=entries, archive_bytes=path.stat().st_size)
