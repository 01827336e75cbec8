"""`python -m ci` parses like any conventional CLI: global options before the command, with any value.

Run as a user runs it (a subprocess from a plain directory), so a value such as `--build-dir smoke`
is the literal word, resolved against the working directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ci.cli import COMMAND_MODULES, command_name
from ci.paths import REPO_ROOT

COMMANDS = [command_name(module) for module in COMMAND_MODULES]


def ci(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "ci", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def pure_python_layer(build: Path) -> None:
    build.mkdir(parents=True)
    with zipfile.ZipFile(build / "layer.zip", "w") as archive:
        archive.writestr("python/demo/__init__.py", "VALUE = 1\n")


@pytest.mark.parametrize("name", COMMANDS)
def test_a_build_dir_named_like_a_command_is_just_a_directory(tmp_path: Path, name: str) -> None:
    pure_python_layer(tmp_path / name)
    result = ci(tmp_path, "--build-dir", name, "abi")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / name / "reports" / "abi.json").read_text())["passed"] is True


def test_every_global_option_takes_any_word_before_the_command(tmp_path: Path) -> None:
    pure_python_layer(tmp_path / "smoke")
    shutil.copyfile(REPO_ROOT / "pipeline.toml", tmp_path / "deploy")
    result = ci(
        tmp_path,
        "--cache-dir",
        "build",
        "--config",
        "deploy",
        "--build-dir",
        "smoke",
        "abi",
        "--zip",
        "smoke/layer.zip",
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "smoke" / "reports" / "abi.json").is_file()
    # "build" is the cache (the unpacked layer the check read), not a build directory.
    assert sorted(p.name for p in (tmp_path / "build").iterdir()) == ["unpacked-layers"]


def test_every_command_module_is_registered_with_its_own_help() -> None:
    modules = sorted(path.stem.removeprefix("cmd_").replace("_", "-") for path in (REPO_ROOT / "ci").glob("cmd_*.py"))
    assert sorted(COMMANDS) == modules
    listing = ci(REPO_ROOT, "--help")
    assert listing.returncode == 0
    for module in COMMAND_MODULES:
        assert " ".join(module.HELP.split()) in " ".join(listing.stdout.split()), command_name(module)


@pytest.mark.parametrize("args", [["--help"], ["deploy", "--help"], ["smoke", "--help"], ["bench", "--help"]])
def test_help_imports_no_heavy_library(args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "ci", *args], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert not {name for name in imported if name.split(".")[0] in {"boto3", "botocore", "sklearn", "numpy", "moto"}}


def test_an_unknown_command_is_an_argparse_error(tmp_path: Path) -> None:
    result = ci(tmp_path, "--build-dir", "smoke", "smokey")
    assert result.returncode == 2 and "invalid choice: 'smokey'" in result.stderr
