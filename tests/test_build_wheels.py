"""Fetch and install: hash-checked cache (no network when warm), the wheel spec's .data handling."""

from __future__ import annotations

import base64
import hashlib
import re
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from ci.config import load_config
from ci.errors import PipelineError
from ci.layer import wheels
from ci.lock.lockfile import LockFile, Pin
from ci.paths import REPO_ROOT
from ci.pip import target_platforms

SIX = REPO_ROOT / "requirements-layer.txt"
TARGET = load_config().target


def six_lock(tmp_path: Path) -> LockFile:
    """A one-pin lock copied from the committed one (six: an 11 kB wheel)."""
    text = SIX.read_text()
    start = text.index("six==")
    block = text[start:].split("\n    # via")[0]
    path = tmp_path / "requirements-layer.txt"
    path.write_text(block + "\n")
    return wheels.read_layer_lock(path)


def test_the_lock_is_read_strictly(tmp_path: Path) -> None:
    lock = wheels.read_layer_lock(REPO_ROOT / "requirements-layer.txt")
    assert lock.get("scikit_learn") is not None and lock.get("scikit-learn").version == "1.3.2"
    assert all(pin.sha256 for pin in lock.entries)
    (tmp_path / "a.txt").write_text("six>=1.0 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    with pytest.raises(PipelineError, match="not pinned"):
        wheels.read_layer_lock(tmp_path / "a.txt")
    (tmp_path / "b.txt").write_text("six==1.17.0\n")
    with pytest.raises(PipelineError, match="has no --hash"):
        wheels.read_layer_lock(tmp_path / "b.txt")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("# header\nsix>=1.0 --hash=sha256:" + "0" * 64 + "\n", "a.txt:2: 'six>=1.0' is not pinned as name==version"),
        ("six==1.* --hash=sha256:" + "0" * 64 + "\n", "a.txt:1: 'six==1.*' is not pinned as name==version"),
        ("six @ https://example.invalid/six.whl\n", "a.txt:1: 'six' is not pinned as name==version"),
        ("six==1.17.0 \\\n    --hash=sha512:abc\n", "a.txt:1: six==1.17.0 has no --hash"),
        ("# nothing but comments\n--index-url https://pypi.org/simple\n", "a.txt pins nothing"),
    ],
)
def test_the_layer_lock_refusals_name_line_and_fix(tmp_path: Path, content: str, problem: str) -> None:
    (tmp_path / "a.txt").write_text(content)
    with pytest.raises(PipelineError) as raised:
        wheels.read_layer_lock(tmp_path / "a.txt")
    assert raised.value.problem.endswith(problem) and "python -m ci lock" in raised.value.fix
    with pytest.raises(PipelineError, match="not found") as missing:
        wheels.read_layer_lock(tmp_path / "absent.txt")
    assert "python -m ci lock" in missing.value.fix


def test_target_tags_follow_the_runtime_glibc() -> None:
    platforms = target_platforms(TARGET)
    major, minor = TARGET.glibc_tuple
    assert platforms[0] == f"manylinux_{major}_{minor}_{TARGET.machine}"
    assert f"manylinux2014_{TARGET.machine}" in platforms and f"manylinux_{major}_{minor + 1}_x86_64" not in platforms


def test_fetch_downloads_once_then_serves_from_the_cache_and_refetches_a_tampered_wheel(tmp_path: Path) -> None:
    lock = six_lock(tmp_path)
    cache = tmp_path / "wheels"
    first = wheels.fetch(lock, cache, TARGET, "https://pypi.org/simple")
    assert first.downloaded and [w.path.name for w in first.wheels] == ["six-1.17.0-py2.py3-none-any.whl"]
    second = wheels.fetch(lock, cache, TARGET, "https://invalid.invalid/simple")  # no network needed
    assert not second.downloaded and second.wheels[0].sha256 in lock.entries[0].sha256
    with first.wheels[0].path.open("ab") as handle:
        handle.write(b"tampered")
    found, missing = wheels.find_cached(lock, cache, TARGET)
    assert not found and missing == list(lock.entries)
    third = wheels.fetch(lock, cache, TARGET, "https://pypi.org/simple")
    assert third.downloaded and hashlib.sha256(third.wheels[0].path.read_bytes()).hexdigest() in lock.entries[0].sha256


def make_wheel(path: Path, record: dict[str, str] | None = None) -> wheels.CachedWheel:
    """A wheel with .data schemes; its RECORD hashes every file (`record` overrides entries: name -> hash field)."""
    files = {
        "demo/__init__.py": b"X = 1\n",
        "demo-1.0.data/purelib/demo_extra.py": b"Y = 2\n",
        "demo-1.0.data/platlib/demo_native/__init__.py": b"",
        "demo-1.0.data/scripts/demo-cli": b"#!python\n",
        "demo-1.0.data/headers/demo.h": b"int x;\n",
        "demo-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n",
        "demo-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\n",
    }
    hashes = {
        name: "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        for name, data in files.items()
    }
    hashes.update(record or {})
    lines = [f"{name},{digest},{len(files[name])}" for name, digest in hashes.items()]
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr("demo-1.0.dist-info/RECORD", "\n".join([*lines, "demo-1.0.dist-info/RECORD,,"]) + "\n")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    pin = Pin("demo", "demo==1.0", 1, Requirement("demo==1.0"), hashes=(f"sha256:{digest}",))
    return wheels.CachedWheel(pin, path, digest)


def test_install_follows_the_wheel_spec_and_reports_what_it_dropped(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "demo-1.0-py3-none-any.whl")
    site = tmp_path / "layer" / "python"
    [dist] = wheels.install_wheels([wheel], site)
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
        wheels.install_wheels([wheel], tmp_path / "python")


@pytest.mark.parametrize(
    ("record", "says"),
    [
        ({"demo/__init__.py": "sha256=" + "A" * 43}, "demo/__init__.py does not have the sha256 its RECORD gives"),
        ({"demo/__init__.py": ""}, "its RECORD gives no sha256 for demo/__init__.py"),
    ],
)
@pytest.mark.parametrize("cached", [False, True])
def test_a_wheel_whose_files_are_not_its_records_is_refused_on_first_unpack(
    tmp_path: Path, record: dict[str, str], says: str, cached: bool
) -> None:
    """The lock's hash covers the wheel; RECORD covers each file in it. Both hold before anything is installed."""
    wheel = make_wheel(tmp_path / "demo-1.0-py3-none-any.whl", record)
    unpacked = tmp_path / "unpacked" if cached else None
    with pytest.raises(PipelineError, match=re.escape(f"demo-1.0-py3-none-any.whl: {says}")) as caught:
        wheels.install_wheels([wheel], tmp_path / "python", unpacked=unpacked)
    assert "pin another version" in caught.value.fix
    assert not unpacked or not any((unpacked).iterdir())  # nothing cached from a refused wheel


def hashed_wheel(path: Path) -> wheels.CachedWheel:
    """A wheel whose RECORD hashes every file, as the wheel spec asks."""
    files = {
        "demo/__init__.py": b"X = 1\n",
        "demo/native.so": b"\x7fELF not really",
        "demo-1.0.data/purelib/demo_extra.py": b"Y = 2\n",
        "demo-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n",
        "demo-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\n",
    }
    lines = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        lines.append(f"{name},sha256={digest},{len(data)}")
    lines.append("demo-1.0.dist-info/RECORD,,")
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 2, 5, 22, 0, 14))
            info.external_attr = (0o755 if name.endswith(".so") else 0o644) << 16
            zf.writestr(info, data)
        zf.writestr("demo-1.0.dist-info/RECORD", "\n".join(lines) + "\n")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    pin = Pin("demo", "demo==1.0", 1, Requirement("demo==1.0"), hashes=(f"sha256:{digest}",))
    return wheels.CachedWheel(pin, path, digest)


def tree_facts(site: Path) -> dict[str, tuple[bytes, int, int]]:
    return {
        p.relative_to(site).as_posix(): (p.read_bytes(), p.stat().st_mode, int(p.stat().st_mtime))
        for p in site.rglob("*")
        if p.is_file()
    }


def test_a_cached_unpack_installs_by_links_the_same_tree_and_a_changed_entry_is_unpacked_again(
    tmp_path: Path,
) -> None:
    wheel = hashed_wheel(tmp_path / "demo-1.0-py3-none-any.whl")
    wheels.install_wheels([wheel], tmp_path / "plain" / "python")
    plain = tree_facts(tmp_path / "plain" / "python")
    unpacked = tmp_path / "cache" / "unpacked"

    for name in ("first", "second"):
        site = tmp_path / name / "python"
        [dist] = wheels.install_wheels([wheel], site, unpacked=unpacked)
        assert tree_facts(site) == plain and (dist.name, dist.version) == ("demo", "1.0")
    cached = unpacked / wheel.sha256 / "tree" / "demo" / "__init__.py"
    linked = tmp_path / "second" / "python" / "demo" / "__init__.py"
    assert linked.stat().st_ino == cached.stat().st_ino  # a link, not a copy

    with cached.open("r+b") as changed:  # written in place: every link to it sees it
        changed.write(b"Z")
    site = tmp_path / "third" / "python"
    wheels.install_wheels([wheel], site, unpacked=unpacked)
    assert tree_facts(site) == plain, "the changed entry was unpacked again from the wheel, never installed"
    assert (unpacked / wheel.sha256 / "tree" / "demo" / "__init__.py").read_bytes() == b"X = 1\n"
    assert not list(unpacked.glob("*.partial"))


def test_a_broken_entry_in_the_way_is_never_linked_from(tmp_path: Path) -> None:
    """An entry with no record of what it holds (not made by an install): the install uses its own fresh copy."""
    wheel = hashed_wheel(tmp_path / "demo-1.0-py3-none-any.whl")
    wheels.install_wheels([wheel], tmp_path / "plain" / "python")
    unpacked = tmp_path / "cache" / "unpacked"
    (unpacked / wheel.sha256 / "tree" / "demo").mkdir(parents=True)
    (unpacked / wheel.sha256 / "tree" / "demo" / "__init__.py").write_text("import os; os.system('x')\n")
    site = tmp_path / "site" / "python"
    wheels.install_wheels([wheel], site, unpacked=unpacked)
    assert tree_facts(site) == tree_facts(tmp_path / "plain" / "python")
    assert not list(unpacked.glob("*.partial"))
