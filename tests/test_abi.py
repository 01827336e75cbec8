"""The ABI check on small trees of real ELF files (gcc) and written PE/Mach-O headers."""

from __future__ import annotations

import dataclasses
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from ci.abi import exports_pyinit, glibc_symbols, read_elf, scan_tree
from ci.config import Target, load_config, load_policy, version_tuple
from ci.paths import BuildPaths
from tests.abi_fixtures import (
    EM_AARCH64,
    build_elf_objects,
    fat_header,
    java_class_header,
    macho_header,
    patch_bytes,
    pe_header,
    set_machine,
)
from tests.config_fixtures import PYC_TAG, PYTHON, TARGET
from tests.conftest import run_cli

WIN = f"{TARGET.runtime.python_tag}-win_amd64"

TAG = TARGET.extension_suffix  # cpython-3XX-x86_64-linux-gnu of pipeline.toml's runtime
# Another runtime's Python: its extension modules must be refused.
OTHER = next(f"cpython-{p.python.replace('.', '')}" for p in load_policy().values() if p.python != PYTHON)


@pytest.fixture(scope="module")
def elf_objects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_elf_objects(tmp_path_factory.mktemp("elf"))


@pytest.fixture()
def target() -> Target:
    return load_config().target


def with_glibc(target: Target, glibc: str) -> Target:
    return dataclasses.replace(target, glibc=glibc)


def place(root: Path, rel: str, source: Path | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(source, bytes):
        path.write_bytes(source)
    else:
        shutil.copyfile(source, path)
    return path


def add_distribution(site: Path, name: str, files: list[str] | None = None, top_level: list[str] | None = None) -> None:
    """A *.dist-info with METADATA and, when given, RECORD and top_level.txt."""
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n\n")
    if files is not None:
        (info / "RECORD").write_text("".join(f"{f},sha256=x,1\n" for f in files))
    if top_level is not None:
        (info / "top_level.txt").write_text("\n".join(top_level) + "\n")


def by_path(violations: list) -> dict:
    return {v.path: v for v in violations}


def test_gcc_extension_reads_as_x86_64_needing_glibc_2_14(elf_objects: dict[str, Path]) -> None:
    facts = read_elf(elf_objects["extension"])
    assert (facts.machine, facts.elf_class, facts.little_endian) == ("EM_X86_64", 64, True)
    assert max(facts.glibc_needs) == (2, 14)
    assert facts.glibc_needs[(2, 14)] == "libc.so.6"
    assert "memcpy" in glibc_symbols(elf_objects["extension"], (2, 14))
    assert exports_pyinit(elf_objects["extension"])
    assert not exports_pyinit(elf_objects["library"])


def test_clean_tree_passes_and_reports_glibc_per_distribution(
    tmp_path: Path, elf_objects: dict[str, Path], target: Target
) -> None:
    site = tmp_path / "python"
    place(site, f"fixture/_core.{TAG}.so", elf_objects["extension"])
    place(site, "fixture/_stable.abi3.so", elf_objects["extension"])
    place(site, "fixture.libs/libhelper-1a2b3c.so", elf_objects["library"])
    place(site, "fixture/lib/libplain.so", elf_objects["library"])  # a shared library, not a module
    place(site, "fixture/__init__.py", b"")
    add_distribution(site, "fixture", top_level=["fixture"])

    scan = scan_tree(tmp_path, target)

    assert scan.violations == []
    assert (scan.files, scan.elf_files, scan.extension_modules) == (7, 4, 2)  # + METADATA, top_level
    assert scan.max_glibc == (2, 14)
    assert scan.to_dict()["glibc_by_distribution"] == {"fixture": "2.14"}


def test_glibc_newer_than_the_target_is_named_with_its_symbol(
    tmp_path: Path, elf_objects: dict[str, Path], target: Target
) -> None:
    place(tmp_path, f"python/fast/_copy.{TAG}.so", elf_objects["extension"])
    add_distribution(tmp_path / "python", "fastcopy", files=[f"fast/_copy.{TAG}.so"])

    assert scan_tree(tmp_path, target).violations == []  # 2.14 <= the target's glibc
    (violation,) = scan_tree(tmp_path, with_glibc(target, "2.12")).violations

    assert violation.rule == "glibc"
    assert violation.path == f"python/fast/_copy.{TAG}.so"
    assert violation.distribution == "fastcopy"
    assert "GLIBC_2.14" in violation.message and "memcpy" in violation.message and "2.12" in violation.message


def test_glibc_2_99_requirement_fails_the_default_target(
    tmp_path: Path, elf_objects: dict[str, Path], target: Target
) -> None:
    so = place(tmp_path, f"python/future/_x.{TAG}.so", elf_objects["extension"])
    patch_bytes(so, b"GLIBC_2.14", b"GLIBC_2.99")  # same length: the verneed string table stays valid

    (violation,) = scan_tree(tmp_path, target).violations
    assert violation.rule == "glibc" and "GLIBC_2.99" in violation.message
    assert violation.distribution == "future"  # no dist-info: first path component


def test_wrong_architecture(tmp_path: Path, elf_objects: dict[str, Path], target: Target) -> None:
    so = place(tmp_path, f"python/armpkg/_m.{TAG}.so", elf_objects["extension"])
    set_machine(so, EM_AARCH64)

    (violation,) = scan_tree(tmp_path, target).violations
    assert violation.rule == "architecture"
    assert "EM_AARCH64" in violation.message and "EM_X86_64" in violation.message

    arm = dataclasses.replace(target, architecture="arm64")
    so.unlink()
    place(tmp_path, f"python/armpkg/_m.{PYC_TAG}-aarch64-linux-gnu.so", elf_objects["extension"])
    rules = sorted(v.rule for v in scan_tree(tmp_path, arm).violations)
    assert rules == ["architecture"]  # x86_64 bytes under an aarch64 name: the bytes decide


def test_extension_tags_of_other_pythons_and_untagged_modules(
    tmp_path: Path, elf_objects: dict[str, Path], target: Target
) -> None:
    site = tmp_path / "python"
    place(site, f"newer/_m.{OTHER}-x86_64-linux-gnu.so", elf_objects["extension"])
    place(site, f"armname/_m.{PYC_TAG}-aarch64-linux-gnu.so", elf_objects["extension"])
    place(site, "untagged/_m.so", elf_objects["extension"])  # exports PyInit_*, no tag
    place(site, "vendored.libs/_m.so", elf_objects["extension"])  # *.libs: loaded by path, never imported

    found = by_path(scan_tree(tmp_path, target).violations)

    assert set(found) == {
        f"python/newer/_m.{OTHER}-x86_64-linux-gnu.so",
        f"python/armname/_m.{PYC_TAG}-aarch64-linux-gnu.so",
        "python/untagged/_m.so",
    }
    assert all(v.rule == "python-tag" for v in found.values())
    assert OTHER in found[f"python/newer/_m.{OTHER}-x86_64-linux-gnu.so"].message
    assert "untagged" in found["python/untagged/_m.so"].message


def test_foreign_binaries_by_header_and_by_name(tmp_path: Path, target: Target) -> None:
    site = tmp_path / "python"
    place(site, f"winpkg/_speedups.{WIN}.pyd", b"not even a PE file")
    place(site, "winpkg/helper.dll", pe_header())
    place(site, "winpkg/disguised.bin", pe_header())  # no telling name: the header decides
    place(site, f"macpkg/_core.{TAG}.so", macho_header())  # Mach-O under a Linux name
    place(site, "macpkg/libfat.dylib", fat_header())
    place(site, "macpkg/universal", fat_header())
    place(site, "javapkg/Main.class", java_class_header())  # same magic as fat Mach-O, not a binary
    place(site, "textpkg/notes.txt", b"MZ is also how this text starts")
    add_distribution(site, "macpkg", top_level=["macpkg"])

    found = by_path(scan_tree(tmp_path, target).violations)

    assert set(found) == {
        f"python/winpkg/_speedups.{WIN}.pyd",
        "python/winpkg/helper.dll",
        "python/winpkg/disguised.bin",
        f"python/macpkg/_core.{TAG}.so",
        "python/macpkg/libfat.dylib",
        "python/macpkg/universal",
    }
    assert all(v.rule == "foreign-binary" for v in found.values())
    assert "Windows PE" in found["python/winpkg/disguised.bin"].message
    assert "Mach-O" in found[f"python/macpkg/_core.{TAG}.so"].message
    assert found["python/macpkg/universal"].distribution == "macpkg"


def test_distribution_comes_from_record_then_top_level_then_path(
    tmp_path: Path, elf_objects: dict[str, Path], target: Target
) -> None:
    site = tmp_path / "python"
    bad = f"_m.{OTHER}-x86_64-linux-gnu.so"  # another Python's tag: a violation to attribute
    place(site, f"sklearn/{bad}", elf_objects["extension"])
    place(site, "scikit_learn.libs/libgomp-a34b3233.so.1.0.0", pe_header())
    place(site, f"dateutil/{bad}", elf_objects["extension"])
    place(site, f"loose/{bad}", elf_objects["extension"])
    add_distribution(site, "scikit-learn", files=[f"sklearn/{bad}"])
    add_distribution(site, "python-dateutil", top_level=["dateutil"])

    owners = {v.path.removeprefix("python/"): v.distribution for v in scan_tree(tmp_path, target).violations}

    assert owners == {
        f"sklearn/{bad}": "scikit-learn",  # RECORD
        "scikit_learn.libs/libgomp-a34b3233.so.1.0.0": "scikit-learn",  # foo.libs -> foo
        f"dateutil/{bad}": "python-dateutil",  # top_level.txt
        f"loose/{bad}": "loose",  # first path component
    }


def test_truncated_elf_is_a_violation_not_a_crash(tmp_path: Path, elf_objects: dict[str, Path], target: Target) -> None:
    place(tmp_path, f"python/broken/_m.{TAG}.so", elf_objects["extension"].read_bytes()[:100])
    place(tmp_path, "python/broken/_n.abi3.so", b"text, not a binary")
    rules = sorted(v.rule for v in scan_tree(tmp_path, target).violations)
    assert rules == ["unreadable-elf", "unreadable-elf"]


def test_cli_checks_a_zip_and_writes_the_report(tmp_path: Path, elf_objects: dict[str, Path]) -> None:
    layer = tmp_path / "layer.zip"
    with zipfile.ZipFile(layer, "w") as archive:
        archive.write(elf_objects["extension"], f"python/good/_m.{TAG}.so")
        archive.write(elf_objects["extension"], "python/bad/_m.cpython-310-x86_64-linux-gnu.so")
        archive.writestr("python/bad/helper.dll", pe_header())
    build = tmp_path / "build"

    result = run_cli("-m", "ci", "--build-dir", str(build), "abi", "--zip", str(layer), check=False)

    assert result.returncode == 1
    assert "2 ABI violation(s)" in result.stderr and "fix:" in result.stderr
    assert "python/bad/helper.dll" in result.stdout and "foreign-binary" in result.stdout
    assert not (build / "reports" / "abi.json").exists()  # abi.json vouches for build/layer.zip only
    report = json.loads((build / "reports" / "abi-adhoc.json").read_text())
    assert report["check"] == "abi-adhoc" and report["passed"] is False
    assert report["max_glibc"] == "2.14"
    assert {v["path"] for v in report["violations"]} == {
        "python/bad/_m.cpython-310-x86_64-linux-gnu.so",
        "python/bad/helper.dll",
    }

    ok = run_cli("-m", "ci", "--build-dir", str(build), "abi", "--tree", str(tmp_path / "nothing-here"), check=False)
    assert ok.returncode == 1 and "not found" in ok.stderr


@pytest.mark.slow
def test_real_layer_passes_and_needs_at_most_the_targets_glibc(built_layer: BuildPaths) -> None:
    build = built_layer.build
    run_cli("-m", "ci", "--build-dir", str(build), "--cache-dir", str(built_layer.cache), "abi")

    report = json.loads((build / "reports" / "abi.json").read_text())
    assert report["passed"] is True and report["violations"] == []
    assert report["artifacts"]["layer.zip"]  # tied to the exact bytes judged
    target = load_config().target
    assert version_tuple(report["max_glibc"]) <= target.glibc_tuple
    assert {"numpy", "scipy", "scikit-learn", "pandas"} <= set(report["glibc_by_distribution"])
    assert report["extension_modules"] > 100  # numpy, scipy, pandas and sklearn ship hundreds
