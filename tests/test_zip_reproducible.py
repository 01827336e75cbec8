"""Reproducible zips: same tree, same bytes, whatever the files' timestamps or the cache state."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from ci import zipsafe


def make_tree(root: Path, stamp: float) -> Path:
    files = {
        "python/pkg/__init__.py": b"from pkg.core import x\n",
        "python/pkg/core.py": b"x = 1\n" * 2000,
        "python/pkg/data.bin": os.urandom(0) + bytes(range(256)) * 64,
        "python/pkg/tool.sh": b"#!/bin/sh\necho hi\n",
        "python/pkg/empty.txt": b"",
        "python/pkg-1.0.dist-info/METADATA": b"Name: pkg\nVersion: 1.0\n",
    }
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(0o755 if rel.endswith(".sh") else 0o640)
        os.utime(path, (stamp, stamp))
    return root


def test_same_tree_gives_the_same_sha256_regardless_of_mtimes_and_cache(tmp_path: Path) -> None:
    first = zipsafe.write_zip(zipsafe.tree_entries(make_tree(tmp_path / "a", 1_700_000_000)), tmp_path / "a.zip")
    cache = tmp_path / "deflate"
    second = zipsafe.write_zip(zipsafe.tree_entries(make_tree(tmp_path / "b", 1_000_000)), tmp_path / "b.zip", cache)
    third = zipsafe.write_zip(zipsafe.tree_entries(tmp_path / "b"), tmp_path / "c.zip", cache)  # from the cache
    assert first.sha256 == second.sha256 == third.sha256
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "c.zip").read_bytes()
    assert any(cache.iterdir()), "large entries were cached"


def test_entries_are_sorted_dated_1980_with_fixed_permissions_and_readable(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t", 1_700_000_000)
    facts = zipsafe.write_zip(zipsafe.tree_entries(root), tmp_path / "t.zip")
    with zipfile.ZipFile(tmp_path / "t.zip") as zf:
        assert zf.testzip() is None
        infos = zf.infolist()
        names = [info.filename for info in infos]
        assert names == sorted(names)
        assert all(name.startswith("python/") for name in names)
        assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
        modes = {info.filename: (info.external_attr >> 16) & 0o777 for info in infos}
        assert modes["python/pkg/tool.sh"] == 0o755
        assert modes["python/pkg/core.py"] == 0o644
        assert all(info.extra == b"" for info in infos)
        assert {info.compress_type for info in infos} == {zipfile.ZIP_DEFLATED}
        assert zf.read("python/pkg/core.py") == b"x = 1\n" * 2000
    assert facts.files == 6
    assert facts.unzipped_bytes == sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert facts.zipped_bytes == (tmp_path / "t.zip").stat().st_size


def test_a_changed_byte_changes_the_sha256(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t", 1_700_000_000)
    before = zipsafe.write_zip(zipsafe.tree_entries(root), tmp_path / "1.zip").sha256
    (root / "python/pkg/core.py").write_bytes(b"x = 2\n" * 2000)
    assert zipsafe.write_zip(zipsafe.tree_entries(root), tmp_path / "2.zip").sha256 != before
