"""A layer zip unpacked once for the checks that read it as files (a smoke run's /opt: hard links to it), checked
against the zip before every use."""

from __future__ import annotations

import os
import stat
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ci import unpacked_layers
from ci.reports import sha256_file
from ci.unpacked_layers import evict, link_layer
from ci.zipsafe import UnsafeZipError

FILES = {
    "python/pkg/__init__.py": (b"VALUE = 1\n", 0o644),
    "python/pkg/_native.so": (b"\x7fELF" + bytes(4096), 0o755),
    "python/pkg-1.0.dist-info/METADATA": (b"Name: pkg\nVersion: 1.0\n", 0o644),
}


def make_zip(path: Path, files: dict[str, tuple[bytes, int]] = FILES, directories: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name in directories:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFDIR | 0o755) << 16
            archive.writestr(info, b"")
        for name, (data, mode) in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFREG | mode) << 16
            archive.writestr(info, data, zipfile.ZIP_DEFLATED)
    return path


def opt_files(opt: Path) -> dict[str, bytes]:
    return {p.relative_to(opt).as_posix(): p.read_bytes() for p in opt.rglob("*") if p.is_file()}


def test_a_second_run_links_the_copy_unpacked_once(tmp_path: Path) -> None:
    layer = make_zip(tmp_path / "layer.zip", directories=("python/empty/",))
    layers = tmp_path / "layers"
    link_layer(layers, layer, tmp_path / "run1" / "opt")
    link_layer(layers, layer, tmp_path / "run2" / "opt")
    entry = layers / sha256_file(layer)
    assert opt_files(tmp_path / "run2" / "opt") == {name: data for name, (data, _mode) in FILES.items()}
    assert (tmp_path / "run2" / "opt" / "python" / "empty").is_dir(), "the zip's empty directory too"
    native = tmp_path / "run2" / "opt" / "python" / "pkg" / "_native.so"
    assert native.stat().st_ino == (entry / "python" / "pkg" / "_native.so").stat().st_ino, "a link, no data written"
    assert native.stat().st_mode & stat.S_IXUSR
    assert [path.name for path in layers.iterdir() if path.is_dir()] == [entry.name], "nothing half made left"


@pytest.mark.parametrize(
    "tamper",
    [
        "same size, other bytes",
        "an extra file",
        "a missing file",
        "an extra directory",
        "the executable bit",
        "a file made a symbolic link",
    ],
)
def test_a_copy_that_differs_from_the_zip_is_unpacked_again(tmp_path: Path, tamper: str) -> None:
    layer = make_zip(tmp_path / "layer.zip")
    layers = tmp_path / "layers"
    link_layer(layers, layer, tmp_path / "first")
    entry = layers / sha256_file(layer)
    init = entry / "python" / "pkg" / "__init__.py"
    if tamper == "same size, other bytes":
        init.unlink()
        init.write_bytes(b"VALUE = 2\n")  # a different CRC, the same length
    elif tamper == "an extra file":
        (entry / "python" / "pkg" / "sitecustomize.py").write_text("import os\n")
    elif tamper == "a missing file":
        (entry / "python" / "pkg-1.0.dist-info" / "METADATA").unlink()
    elif tamper == "an extra directory":
        (entry / "python" / "injected").mkdir()
    elif tamper == "the executable bit":
        (entry / "python" / "pkg" / "_native.so").chmod(0o644)
    else:
        init.unlink()
        (tmp_path / "elsewhere.py").write_bytes(b"VALUE = 2\n")
        init.symlink_to(tmp_path / "elsewhere.py")
    link_layer(layers, layer, tmp_path / "second")
    assert opt_files(tmp_path / "second") == {name: data for name, (data, _mode) in FILES.items()}
    assert os.access(tmp_path / "second" / "python" / "pkg" / "_native.so", os.X_OK)
    assert not (tmp_path / "second" / "python" / "injected").exists()
    assert (tmp_path / "first" / "python" / "pkg" / "__init__.py").exists(), "an earlier run keeps its own links"


def test_runs_side_by_side_share_one_copy(tmp_path: Path) -> None:
    layer = make_zip(tmp_path / "layer.zip")
    layers = tmp_path / "layers"
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda i: link_layer(layers, layer, tmp_path / f"run{i}"), range(8)))
    for index in range(8):
        assert opt_files(tmp_path / f"run{index}") == {name: data for name, (data, _mode) in FILES.items()}
    assert sorted(path.name for path in layers.iterdir() if path.is_dir()) == [sha256_file(layer)]


def test_the_least_recently_used_copies_past_the_byte_budget_and_leftovers_of_killed_runs_are_removed(
    tmp_path: Path,
) -> None:
    layers = tmp_path / "layers"
    zips = []
    for index in range(8):
        files = {**FILES, "python/pkg/__init__.py": (f"VALUE = {index}\n".encode(), 0o644)}
        zips.append(make_zip(tmp_path / f"layer{index}.zip", files))
        link_layer(layers, zips[-1], tmp_path / f"run{index}")
        os.utime(layers / sha256_file(zips[-1]), (index, index))  # used in this order
    one = sum(len(data) for data, _mode in FILES.values())  # each copy's unpacked bytes, give or take a digit
    (layers / f"{'0' * 64}.tmpkilled.partial").mkdir()  # a run killed while unpacking
    evict(layers, 3 * one + 10)
    kept = sorted(path.name for path in layers.iterdir() if path.is_dir())
    assert kept == sorted(sha256_file(z) for z in zips[-3:])
    assert opt_files(tmp_path / "run0"), "a run's links outlive the evicted copy"
    evict(layers, 1)
    assert [path.name for path in layers.iterdir() if path.is_dir()] == [sha256_file(zips[-1])], "the newest stays"
    assert sorted(path.name for path in layers.iterdir() if path.is_file()) == [
        ".lock",
        f"{sha256_file(zips[-1])}.bytes",
    ]


def test_a_check_reading_a_copy_holds_it_against_eviction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(unpacked_layers, "KEPT_BYTES", 1)  # every copy but the newest is past the budget
    layers = tmp_path / "layers"
    first, second = make_zip(tmp_path / "a.zip"), make_zip(tmp_path / "b.zip", {"python/b.py": (b"B = 1\n", 0o644)})
    pool = ThreadPoolExecutor(max_workers=1)
    with unpacked_layers.reading(layers, first) as root:
        other = pool.submit(link_layer, layers, second, tmp_path / "opt")  # links, then evicts `first`
        time.sleep(1.0)
        assert not other.done(), "the eviction waits while a check reads a copy"
        assert (root / "python" / "pkg" / "__init__.py").read_bytes() == FILES["python/pkg/__init__.py"][0]
    other.result(timeout=60)
    pool.shutdown()
    assert not root.exists() and (tmp_path / "opt" / "python" / "b.py").read_bytes() == b"B = 1\n"


def test_an_unsafe_layer_zip_is_refused_before_anything_is_unpacked(tmp_path: Path) -> None:
    layer = make_zip(tmp_path / "layer.zip", {"../escape.py": (b"x", 0o644)})
    with pytest.raises(UnsafeZipError):
        link_layer(tmp_path / "layers", layer, tmp_path / "opt")
    assert not list((tmp_path / "layers").glob("*/"))
