"""Fetch and install: hash-checked cache (no network when warm), the wheel spec's .data handling."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from ci.config import load_config
from ci.errors import PipelineError
from ci.layer import install, lockfile, wheels
from ci.paths import REPO_ROOT

SIX = REPO_ROOT / "requirements-layer.txt"
TARGET = load_config().target


def six_lock(tmp_path: Path) -> lockfile.Lock:
    """A one-pin lock copied from the committed one (six: an 11 kB wheel)."""
    text = SIX.read_text()
    start = text.index("six==")
    block = text[start:].split("\n    # via")[0]
    path = tmp_path / "requirements-layer.txt"
    path.write_text(block + "\n")
    return lockfile.read_lock(path)


def test_the_lock_is_read_strictly(tmp_path: Path) -> None:
    lock = lockfile.read_lock(REPO_ROOT / "requirements-layer.txt")
    assert lock.pin("scikit_learn") is not None and lock.pin("scikit-learn").version == "1.3.2"
    assert all(pin.hashes for pin in lock.pins)
    (tmp_path / "a.txt").write_text("six>=1.0 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    with pytest.raises(PipelineError, match="not pinned"):
        lockfile.read_lock(tmp_path / "a.txt")
    (tmp_path / "b.txt").write_text("six==1.17.0\n")
    with pytest.raises(PipelineError, match="has no --hash"):
        lockfile.read_lock(tmp_path / "b.txt")


def test_target_tags_follow_the_runtime_glibc() -> None:
    platforms = wheels.target_platforms(TARGET)
    assert platforms[0] == f"manylinux_2_26_{TARGET.machine}"
    assert "manylinux2014_x86_64" in platforms and "manylinux_2_28_x86_64" not in platforms


def test_fetch_downloads_once_then_serves_from_the_cache_and_refetches_a_tampered_wheel(tmp_path: Path) -> None:
    lock = six_lock(tmp_path)
    cache = tmp_path / "wheels"
    first = wheels.fetch(lock, cache, TARGET, "https://pypi.org/simple")
    assert first.downloaded and [w.path.name for w in first.wheels] == ["six-1.17.0-py2.py3-none-any.whl"]
    second = wheels.fetch(lock, cache, TARGET, "https://invalid.invalid/simple")  # no network needed
    assert not second.downloaded and second.wheels[0].sha256 in lock.pins[0].hashes
    with first.wheels[0].path.open("ab") as handle:
        handle.write(b"tampered")
    found, missing = wheels.find_cached(lock, cache, TARGET)
    assert not found and missing == list(lock.pins)
    third = wheels.fetch(lock, cache, TARGET, "https://pypi.org/simple")
    assert third.downloaded and hashlib.sha256(third.wheels[0].path.read_bytes()).hexdigest() in lock.pins[0].hashes


def make_wheel(path: Path) -> wheels.CachedWheel:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("demo/__init__.py", "X = 1\n")
        zf.writestr("demo-1.0.data/purelib/demo_extra.py", "Y = 2\n")
        zf.writestr("demo-1.0.data/platlib/demo_native/__init__.py", "")
        zf.writestr("demo-1.0.data/scripts/demo-cli", "#!python\n")
        zf.writestr("demo-1.0.data/headers/demo.h", "int x;\n")
        zf.writestr("demo-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n")
        zf.writestr("demo-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\n")
        zf.writestr("demo-1.0.dist-info/RECORD", "")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return wheels.CachedWheel(lockfile.Pin("demo", "1.0", frozenset({digest})), path, digest)


def test_install_follows_the_wheel_spec_and_reports_what_it_dropped(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "demo-1.0-py3-none-any.whl")
    site = tmp_path / "layer" / "python"
    [dist] = install.install_wheels([wheel], site)
    installed = {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()}
    assert installed == {
        "demo/__init__.py",
        "demo_extra.py",
        "demo_native/__init__.py",
        "demo-1.0.dist-info/METADATA",
        "demo-1.0.dist-info/WHEEL",
        "demo-1.0.dist-info/RECORD",
    }
    assert (dist.name, dist.version) == ("demo", "1.0")
    assert dist.dropped == {"scripts": 1, "headers": 1}
    assert dist.top_level == ["demo", "demo-1.0.dist-info", "demo_extra.py", "demo_native"]
    assert not list(site.rglob("*.pyc")), "no bytecode compilation at install"


def test_install_refuses_a_wheel_whose_hash_changed(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "demo-1.0-py3-none-any.whl")
    with wheel.path.open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(PipelineError, match="changed since it was fetched"):
        install.install_wheels([wheel], tmp_path / "python")
