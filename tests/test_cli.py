"""`python -m ci` parses like any conventional CLI: global options before the command, with any value.

Run as a user runs it (a subprocess from a plain directory), so a value such as `--build-dir smoke`
is the literal word, resolved against the working directory.
"""

from __future__ import annotations

import json
import os
import re
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


@pytest.mark.parametrize("module", [["ci", "build"], ["training"]])
def test_a_python_without_the_projects_environment_says_how_to_run_it_not_a_traceback(module: list[str]) -> None:
    """`python3 -m ci build` with a bare interpreter (-S: no site-packages at all) is one line and exit 3."""
    bare = getattr(sys, "_base_executable", sys.executable)
    result = subprocess.run(
        [bare, "-S", "-m", *module], cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    error, fix = result.stderr.strip().splitlines()
    assert re.match(rf"error: `python -m {' '.join(module)}` needs the module '[\w.]+': ", error), (
        error
    )  # the first one
    assert "is not the project's environment" in error
    assert fix == (
        f"  fix: run `{REPO_ROOT}/.venv/bin/python -m {' '.join(module)}` (`make venv` creates it; "
        "`make pipeline` runs every step)"
    )


def test_a_command_run_inside_another_checkout_names_that_checkouts_environment(tmp_path: Path) -> None:
    other = tmp_path / "other-clone"
    (other / "ci").mkdir(parents=True)
    (other / "ci" / "__init__.py").write_text("")
    (other / "pipeline.toml").write_text("")
    (other / "docs").mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}  # this checkout's ci, run from the other one
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from ci.cli import main; sys.exit(main(['budget']))"],
        cwd=other / "docs", env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert f"the working directory is in the repository {other}, but this `python -m ci` is {REPO_ROOT}'s" in (
        result.stderr
    )
    assert f"fix: run `{other}/.venv/bin/python -m ci budget ...`" in result.stderr


def test_help_lists_the_pipeline_in_the_order_make_pipeline_runs_it() -> None:
    """The steps --help prints are the Makefile's pipeline recipe, training included, in its order."""
    makefile = (REPO_ROOT / "Makefile").read_text()
    recipe = makefile.split("\npipeline: venv\n", 1)[1].split("\n\n", 1)[0]
    expanded = [
        line.strip().replace("$(CI)", "python -m ci").replace("$(PY)", "python") for line in recipe.splitlines()
    ]
    shown = ci(REPO_ROOT, "--help").stdout.split("the pipeline, in order", 1)[1].splitlines()[1:]
    assert [line.split(". ", 1)[1].split("  ")[0] for line in shown if line.strip()] == expanded
    training = subprocess.run(
        [sys.executable, "-m", "training", "--help"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert "Step 2 of `make pipeline`" in " ".join(training.stdout.split())


@pytest.mark.parametrize(
    ("argv", "code", "says"),
    [
        (["budget"], 2, "[budget] has an unknown key limit_byts"),  # configuration: usage, like argparse's own
        (["smokey"], 2, "invalid choice: 'smokey'"),  # argparse
    ],
)
def test_exit_codes_say_what_kind_of_failure_it_was(tmp_path: Path, argv: list[str], code: int, says: str) -> None:
    """0 passed, 1 a check failed, 2 usage or configuration, 3 no environment, 130 interrupted (ci/errors.py)."""
    config = tmp_path / "pipeline.toml"
    config.write_text((REPO_ROOT / "pipeline.toml").read_text().replace("[budget]\n", "[budget]\nlimit_byts = 1\n"))
    result = subprocess.run(
        [sys.executable, "-m", "ci", "--config", str(config), *argv], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr and says in result.stderr
