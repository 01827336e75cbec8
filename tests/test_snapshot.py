"""A snapshot holds exactly the bytes its name vouches for, whatever happens to the source afterwards."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ci.errors import PipelineError
from ci.paths import BuildPaths
from ci.snapshot import take


def test_snapshot_is_named_by_the_bytes_it_holds_and_outlives_a_swap(tmp_path: Path) -> None:
    paths = BuildPaths(build=tmp_path / "build", cache=tmp_path / "cache")
    source = tmp_path / "layer.zip"
    source.write_bytes(b"verified bytes")
    snap = take(paths, source)
    source.write_bytes(b"swapped after the check read it")
    assert snap.path.read_bytes() == b"verified bytes"
    assert snap.sha256 == hashlib.sha256(b"verified bytes").hexdigest()
    assert snap.path.parent.name == snap.sha256 and snap.path.name == "layer.zip"
    assert snap.size == len(b"verified bytes")
    assert not snap.path.stat().st_mode & 0o222, "a snapshot is read-only"
    again = take(paths, source)
    assert again.sha256 != snap.sha256 and snap.path.read_bytes() == b"verified bytes"
    assert not [p for p in (paths.build / "snapshots").iterdir() if p.name.startswith(".")], "no temp files left"


def test_snapshot_of_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    paths = BuildPaths(build=tmp_path / "build", cache=tmp_path / "cache")
    with pytest.raises(PipelineError, match="not found"):
        take(paths, tmp_path / "nothing.zip")


def test_a_second_check_of_the_same_bytes_reuses_the_copy_after_hashing_it_again(tmp_path: Path) -> None:
    paths = BuildPaths(build=tmp_path / "build", cache=tmp_path / "cache")
    source = tmp_path / "layer.zip"
    source.write_bytes(b"the build's bytes")
    first = take(paths, source)
    inode = first.path.stat().st_ino
    second = take(paths, source)
    assert second == first and second.path.stat().st_ino == inode, "the same bytes: nothing written again"

    first.path.chmod(0o644)
    first.path.write_bytes(b"the build's bytez")  # the copy changed (same size): no longer those bytes
    third = take(paths, source)
    assert third.sha256 == first.sha256 and third.path.read_bytes() == b"the build's bytes"
    assert third.path.stat().st_ino != inode and not third.path.stat().st_mode & 0o222
