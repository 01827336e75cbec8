"""Every command opens zips through ci.zipsafe: links, devices, duplicate or escaping names are
refused naming the entry, and a damaged archive is one error line, never a traceback."""

from __future__ import annotations

import stat
import warnings
import zipfile
from pathlib import Path

import pytest

from ci.errors import PipelineError
from ci.paths import REPO_ROOT
from tests.conftest import run_cli
from tests.smoke_fixtures import TINY_HANDLER, run_tiny

GOOD = {"python/pkg/__init__.py": b"VALUE = 1\n"}


def entry(name: str, mode: int = stat.S_IFREG | 0o644) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.create_system = 3
    info.external_attr = mode << 16
    return info


def make_zip(path: Path, *extra: tuple[zipfile.ZipInfo, bytes]) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name we write on purpose
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
            for name, data in GOOD.items():
                archive.writestr(entry(name), data)
            for info, data in extra:
                archive.writestr(info, data)
    return path


BAD_ENTRIES = {
    "symlink": ((entry("python/pkg/link.py", stat.S_IFLNK | 0o777), b"/etc/passwd"), "symbolic link"),
    "duplicate": ((entry("python/pkg/__init__.py"), b"VALUE = 2\n"), "appears twice"),
    "absolute": ((entry("/tmp/evil.py"), b""), "absolute path"),
    "dotdot": ((entry("python/../../evil.py"), b""), "'..'"),
    "backslash": ((entry("python\\evil.py"), b""), "backslash"),
    "drive": ((entry("C:/evil.py"), b""), "drive letter"),
    "fifo": ((entry("python/pkg/pipe", stat.S_IFIFO | 0o644), b""), "neither a file nor a directory"),
    # Other spellings of python/pkg/__init__.py: unique as strings, one file once unpacked.
    "dot-segment": ((entry("python/./pkg/__init__.py"), b"VALUE = 2\n"), "not a canonical name"),
    "empty-segment": ((entry("python//pkg/__init__.py"), b"VALUE = 2\n"), "not a canonical name"),
    "leading-dot": ((entry("./python/pkg/__init__.py"), b"VALUE = 2\n"), "not a canonical name"),
    "dot-directory": ((entry("python/./", stat.S_IFDIR | 0o755), b""), "not a canonical name"),
}
SPELLINGS = ["dot-segment", "empty-segment", "leading-dot"]


def bad_zip(tmp_path: Path, kind: str) -> tuple[Path, str, str]:
    (info, data), why = BAD_ENTRIES[kind]
    return make_zip(tmp_path / "layer.zip", (info, data)), info.filename, why


def bad_crc(path: Path) -> Path:
    make_zip(path)
    raw = bytearray(path.read_bytes())
    offset = raw.index(b"VALUE = 1")
    raw[offset] ^= 0x01  # stored data no longer matches the recorded CRC-32
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize("kind", sorted(BAD_ENTRIES))
def test_the_reader_refuses_naming_the_entry(kind: str, tmp_path: Path) -> None:
    from ci.zipsafe import UnsafeZipError, open_zip

    path, name, why = bad_zip(tmp_path, kind)
    with pytest.raises(UnsafeZipError) as info, open_zip(path, "rebuild it"):
        pass
    assert repr(name) in info.value.problem and why in info.value.problem and info.value.fix


def test_a_clean_zip_extracts_with_its_modes(tmp_path: Path) -> None:
    from ci.zipsafe import open_zip

    path = make_zip(tmp_path / "ok.zip", (entry("python/bin/tool", stat.S_IFREG | 0o755), b"#!/bin/sh\n"))
    with open_zip(path, "rebuild it") as archive:
        archive.extract_all(tmp_path / "out")
    assert (tmp_path / "out" / "python" / "pkg" / "__init__.py").read_bytes() == b"VALUE = 1\n"
    assert (tmp_path / "out" / "python" / "bin" / "tool").stat().st_mode & 0o111


@pytest.mark.parametrize("damage", ["crc", "truncated", "not-a-zip"])
def test_damage_is_one_error(damage: str, tmp_path: Path) -> None:
    from ci.zipsafe import DamagedZipError, open_zip

    path = tmp_path / "layer.zip"
    if damage == "crc":
        bad_crc(path)
    elif damage == "truncated":
        path.write_bytes(make_zip(path).read_bytes()[:-30])
    else:
        path.write_bytes(b"this is not a zip")
    with pytest.raises(DamagedZipError, match=r"layer\.zip"), open_zip(path, "rebuild it") as archive:
        archive.verify()


def ci_command(tmp_path: Path, *args: str) -> tuple[int, str]:
    build = tmp_path / "build"
    result = run_cli("-m", "ci", "--build-dir", str(build), "--cache-dir", str(REPO_ROOT / "build" / "cache"), *args,
                     check=False)  # fmt: skip
    return result.returncode, result.stderr


@pytest.mark.parametrize("kind", ["symlink", "duplicate", *SPELLINGS])
def test_abi_and_budget_refuse_a_link_or_a_duplicate(kind: str, tmp_path: Path) -> None:
    path, name, why = bad_zip(tmp_path, kind)
    (tmp_path / "build").mkdir()
    path.replace(tmp_path / "build" / "layer.zip")
    make_zip(tmp_path / "build" / "function.zip")
    for command in ("abi", "budget"):
        code, err = ci_command(tmp_path, command)
        assert code != 0, command
        assert name in err and why in err and "Traceback" not in err, (command, err)


@pytest.mark.parametrize("damage", ["crc", "not-a-zip"])
def test_abi_names_a_damaged_zip_without_a_traceback(damage: str, tmp_path: Path) -> None:
    layer = tmp_path / "build" / "layer.zip"
    layer.parent.mkdir()
    if damage == "crc":
        bad_crc(layer)
    else:
        layer.write_bytes(b"PK\x03\x04 truncated")
    code, err = ci_command(tmp_path, "abi")
    assert code == 1 and "Traceback" not in err
    assert err.startswith("error: ") and "layer.zip" in err and "fix:" in err


@pytest.mark.parametrize("kind", ["symlink", "duplicate", "dotdot", *SPELLINGS])
def test_smoke_refuses_before_extracting(kind: str, tmp_path: Path) -> None:
    path, name, why = bad_zip(tmp_path, kind)
    with pytest.raises(PipelineError, match=why) as info:
        run_tiny(tmp_path, TINY_HANDLER, layer=path)
    assert name in info.value.problem
    assert not (tmp_path / "evil.py").exists()


def test_smoke_names_a_bad_crc(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="damaged"):
        run_tiny(tmp_path, TINY_HANDLER, layer=bad_crc(tmp_path / "crc.zip"))


def test_budget_refuses_a_bad_crc(tmp_path: Path) -> None:
    """The budget reads only the central directory; a layer that does not unpack must not pass it."""
    (tmp_path / "build").mkdir()
    bad_crc(tmp_path / "build" / "layer.zip")
    make_zip(tmp_path / "build" / "function.zip")
    code, err = ci_command(tmp_path, "budget")
    assert code == 1 and "Traceback" not in err, err
    assert err.startswith("error: ") and "layer.zip is damaged" in err and "fix:" in err


def test_every_opening_checks_the_crcs(tmp_path: Path) -> None:
    """Owners, attribution and deploy's sizing open zips too: none reads one whose data is damaged."""
    from ci.deploy.artifacts import Artifact
    from ci.site.owners import Owners
    from ci.zipsafe import DamagedZipError

    path = bad_crc(tmp_path / "layer.zip")
    with pytest.raises(DamagedZipError):
        Owners.of_zip(path)
    with pytest.raises(DamagedZipError):
        Artifact("layer.zip", "layer", path, "0" * 64, path.stat().st_size).unzipped_bytes()


def test_deploy_sizes_through_the_reader(tmp_path: Path) -> None:
    from ci.deploy.artifacts import Artifact

    path, _name, why = bad_zip(tmp_path, "symlink")
    with pytest.raises(PipelineError, match=why):
        Artifact("layer.zip", "layer", path, "0" * 64, path.stat().st_size).unzipped_bytes()
