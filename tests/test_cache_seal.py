"""A cache is an accelerator, never a source: what a writer of a restored build/cache put there never ships.

build/cache travels through actions/cache and any job on main writes main's cache; these tests play that
writer, replacing the cached outputs a warm rebuild would take (shipped bytecode, stripped libraries,
deflate streams) under the names the build looks for, and require the same bytes as before. Proof records,
the pristine verdict and the checking interpreters' bytecode: tests/test_proofs.py, test_verify.py and
test_pyc_store.py.
"""

from __future__ import annotations

import _ctypes
import _json
import hashlib
import json
import os
import shutil
import zipfile
import zlib
from pathlib import Path

import pytest

from ci import cache_seal, zipsafe
from ci.arch.interpreter import run_isolated, target_python
from ci.layer.build import strip_tree
from ci.paths import REPO_ROOT, BuildPaths
from tests.config_fixtures import PYC_TAG
from tests.config_fixtures import PYTHON as TARGET_PYTHON
from tests.conftest import run_cli

PYTHON = target_python(TARGET_PYTHON)
EVIL = "raise SystemExit('poisoned bytecode ran')\n"


def build(paths: BuildPaths) -> dict[str, object]:
    run_cli("-m", "ci", "--build-dir", str(paths.build), "--cache-dir", str(paths.cache), "build")
    report: dict[str, object] = json.loads(paths.report("build").read_text())
    return report


def compiled(source: Path, shown: str, target: Path) -> bytes:
    """What py_compile makes of `source` as the build compiles it: unchecked-hash, shown at `shown`."""
    code = (
        "import py_compile; py_compile.compile("
        f"{str(source)!r}, cfile={str(target)!r}, dfile={shown!r}, doraise=True,"
        " invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)"
    )
    run = run_isolated(PYTHON, [], code)
    assert run.returncode == 0, run.stderr
    return target.read_bytes()


def poison(cache: Path, tmp: Path) -> dict[str, int]:
    """Replace every cached output under the name the build reads it by; how many of each were replaced."""
    evil = tmp / "evil.py"
    evil.write_text(EVIL)
    forged = compiled(evil, "/opt/python/evil.py", tmp / "evil.pyc")
    counts = {"bytecode": 0, "deflate": 0}
    for entry in (cache / "bytecode").glob("*.pyc"):
        entry.unlink()
        entry.write_bytes(forged)
        counts["bytecode"] += 1
    for entry in (cache / "deflate").glob("*.deflate"):
        compressor = zlib.compressobj(zipsafe.LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
        entry.write_bytes(compressor.compress(EVIL.encode()) + compressor.flush())
        counts["deflate"] += 1
    return counts


@pytest.mark.slow
def test_a_poisoned_cache_never_reaches_the_layer(trained_model: BuildPaths, tmp_path: Path) -> None:
    paths = BuildPaths(build=tmp_path / "build", cache=tmp_path / "cache")
    shutil.copytree(trained_model.model_dir, paths.model_dir)
    shared_wheels = REPO_ROOT / "build" / "cache" / "wheels"
    if shared_wheels.is_dir():  # hash-checked against the lock on every use: no download needed
        shutil.copytree(shared_wheels, paths.wheel_cache, copy_function=os.link)
    first = build(paths)
    counts = poison(paths.cache, tmp_path)
    assert all(counts.values()), counts

    again = build(paths)
    assert again["layer"] == first["layer"], "the same layer.zip, byte for byte, as before the cache was poisoned"
    assert again["function"] == first["function"]
    with zipfile.ZipFile(paths.layer_zip) as layer:
        pycs = [name for name in layer.namelist() if name.endswith(f".{PYC_TAG}.pyc")]
        assert pycs
        for name in pycs[:: max(1, len(pycs) // 25)]:  # a spread of the shipped bytecode
            rel = name.removeprefix("python/").replace("__pycache__/", "").replace(f".{PYC_TAG}.pyc", ".py")
            source = tmp_path / "source.py"
            source.write_bytes(layer.read(f"python/{rel}"))
            fresh = compiled(source, f"/opt/python/{rel}", tmp_path / "fresh.pyc")
            assert layer.read(name) == fresh, f"{name} is not what its source compiles to"


def test_a_stripped_library_not_sealed_here_is_stripped_again(tmp_path: Path) -> None:
    """Another library under the name the cache gives the stripped original (its own sha256 after the dot, as
    the old self-check wanted) is never put in the tree: the original is stripped again."""
    if shutil.which("strip") is None:
        pytest.skip("binutils' strip is not installed")
    original, other = Path(_json.__file__), Path(_ctypes.__file__)  # two libraries with symbols to strip
    cache = tmp_path / "cache"

    def stripped_tree(name: str) -> bytes:
        site = tmp_path / name
        site.mkdir()
        shutil.copyfile(original, site / "mod.so")
        result = strip_tree(site, cache, lambda files, site: {})
        assert result.files == 1 and not result.failed, result
        return (site / "mod.so").read_bytes()

    first = stripped_tree("one")
    (entry,) = cache.glob("*.so")
    key = entry.name.split(".", 1)[0]
    forged = other.read_bytes()
    entry.unlink()
    (cache / f"{key}.{hashlib.sha256(forged).hexdigest()}.so").write_bytes(forged)
    assert stripped_tree("two") == first != forged


def test_a_deflate_stream_is_used_only_if_it_inflates_to_the_file(tmp_path: Path) -> None:
    data = b"the file's own bytes " * 1000
    cache = tmp_path / "deflate"
    (tmp_path / "a.py").write_bytes(data)
    zipsafe.write_zip([("a.py", tmp_path / "a.py")], tmp_path / "one.zip", cache)
    (entry,) = cache.iterdir()
    compressor = zlib.compressobj(zipsafe.LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    entry.write_bytes(compressor.compress(b"other bytes" * 10) + compressor.flush())
    zipsafe.write_zip([("a.py", tmp_path / "a.py")], tmp_path / "two.zip", cache)
    with zipfile.ZipFile(tmp_path / "two.zip") as written:
        assert written.read("a.py") == data
    assert (tmp_path / "one.zip").read_bytes() == (tmp_path / "two.zip").read_bytes()


def test_the_key_is_outside_the_cache_and_a_seal_binds_purpose_name_and_bytes(tmp_path: Path) -> None:
    assert not cache_seal.key_file().is_relative_to(REPO_ROOT / "build")
    made = cache_seal.seal("bytecode", "k", b"data")
    assert cache_seal.matches(made, cache_seal.seal("bytecode", "k", b"data"))
    for other in (("strip", "k", b"data"), ("bytecode", "k2", b"data"), ("bytecode", "k", b"datA")):
        assert not cache_seal.matches(made, cache_seal.seal(*other))
    body = {"format": 1, "failures": {}}
    assert cache_seal.unsealed_json("p", "n", cache_seal.sealed_json("p", "n", body)) == body
    assert cache_seal.unsealed_json("p", "other", cache_seal.sealed_json("p", "n", body)) is None
    assert cache_seal.unsealed_json("p", "n", body) is None
