"""`python -m ci lock --upgrade [PACKAGE ...]`: every lock moves together, for the target, and the
command says what moved and what held the rest back.

Offline tests cover the parsing of uv's explanation, the refusals and the restore on failure (a
file:// index with nothing on it makes uv fail for real). The slow tests resolve against PyPI with
uv on copies of the committed locks, then run the real `lock --check` (fresh resolve included).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from packaging.version import Version

from ci.cmd_lock import upgrade_request
from ci.config import load_config
from ci.errors import PipelineError
from ci.lock.check import check_locks
from ci.lock.upgrade import PackageMove, explain_conflict, upgrade_locks
from ci.paths import REPO_ROOT
from ci.pip import SimpleIndex
from tests.conftest import run_cli
from tests.test_lock import LOCK_FILES, edit, repo  # noqa: F401 - fixture

CACHE = REPO_ROOT / "build" / "cache"

UV_NUMPY = """error: No solution found when resolving dependencies
  cause: Because scikit-learn==1.3.2 depends on numpy>=1.17.3,<2.0 and you require scikit-learn==1.3.2, we can
         conclude that you require numpy>=1.17.3,<2.0.
         And because you require numpy>=2.2, we can conclude that your requirements are unsatisfiable."""

# Every [lock] path key: a copied repository points them all at its own files.
LOCK_KEYS = (
    *("requirements_in", "layer_lock", "training_in", "training_lock"),
    *("pipeline_in", "pipeline_lock", "dev_in", "dev_lock", "bootstrap_lock"),
)


def test_the_reason_is_read_from_uvs_explanation() -> None:
    assert explain_conflict("numpy", Version("2.2"), UV_NUMPY) == "numpy<2.0 by scikit-learn 1.3.2"
    botocore = "Because botocore==1.38.36 depends on python-dateutil>=2.1,<3.0.0 and you require botocore==1.38.36"
    assert explain_conflict("python-dateutil", Version("4.0"), botocore) == "python-dateutil<3.0.0 by botocore 1.38.36"
    assert explain_conflict("scipy", Version("1.18"), UV_NUMPY) is None, "never blame a package uv did not name"


def test_a_move_describes_itself() -> None:
    assert PackageMove("pandas", "2.3.2", "2.3.3").describe() == "pandas 2.3.2 -> 2.3.3"
    held = PackageMove("numpy", "1.26.4", "1.26.4", "2.5.5", "numpy<2.0 by scikit-learn 1.3.2")
    assert held.status == "held"
    assert held.describe() == "numpy 1.26.4 (newest 2.5.5; held at 1.26.4: numpy<2.0 by scikit-learn 1.3.2)"
    assert PackageMove("six", None, "1.17.0").status == "added"


def test_package_names_come_as_arguments_or_one_workflow_input() -> None:
    assert upgrade_request(None, []) is None
    assert upgrade_request(False, []) is None  # an older caller's Namespace
    assert upgrade_request([], []) == ()
    assert upgrade_request([""], []) == (), "an empty workflow input means everything"
    assert upgrade_request(["pandas numpy,scipy"], ["joblib"]) == ("pandas", "numpy", "scipy", "joblib")


def test_an_unknown_package_is_refused_with_a_suggestion(repo: Path) -> None:  # noqa: F811
    before = {name: (repo / name).read_bytes() for name in LOCK_FILES}
    index = SimpleIndex("https://pypi.org/simple", CACHE / "pypi-simple", offline=True)
    with pytest.raises(PipelineError, match=r"no \.in file or lock has pandsa") as error:
        upgrade_locks(load_config(root=repo), ("pandsa",), index)
    assert "did you mean pandas?" in error.value.fix
    assert {name: (repo / name).read_bytes() for name in LOCK_FILES} == before


def test_a_failed_resolve_restores_every_file_it_touched(repo: Path, tmp_path: Path) -> None:  # noqa: F811
    empty_index = tmp_path / "empty-index"
    empty_index.mkdir()
    edit(repo / "pipeline.toml", 'index_url = "https://pypi.org/simple"',
         f'index_url = "{empty_index.as_uri()}"\nallow_insecure_index = true')  # fmt: skip
    before = {name: (repo / name).read_bytes() for name in LOCK_FILES}
    index = SimpleIndex(empty_index.as_uri(), CACHE / "pypi-simple", offline=True)

    with pytest.raises(PipelineError, match="uv could not resolve"):
        upgrade_locks(load_config(root=repo), ("scikit-learn",), index, uv_cache=CACHE / "uv")

    after = {name: (repo / name).read_bytes() for name in LOCK_FILES}
    assert after == before, "the released scikit-learn pin and every lock are back as they were"


def test_check_and_upgrade_together_are_refused(tmp_path: Path) -> None:
    result = run_cli("-m", "ci", "--build-dir", str(tmp_path), "lock", "--check", "--upgrade", check=False)
    assert result.returncode == 1
    assert "--check changes nothing; --upgrade rewrites the locks" in result.stderr


# --- real resolves against PyPI --------------------------------------------------------------------


def cli_in(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`python -m ci` on the copy: absolute lock paths, this repository's download cache."""
    config = root / "pipeline.toml"
    text = config.read_text()
    for key in LOCK_KEYS:
        text = text.replace(f'{key} = "', f'{key} = "{root}/') if f'{key} = "{root}' not in text else text
    config.write_text(text)
    base = ["-m", "ci", "--build-dir", str(root / "build"), "--cache-dir", str(CACHE), "--config", str(config)]
    return run_cli(*base, "lock", *args, check=check)


@pytest.mark.slow
def test_upgrade_one_package_moves_every_lock_and_the_check_passes(repo: Path) -> None:  # noqa: F811
    edit(repo / "requirements.in", "threadpoolctl\n", "threadpoolctl<3.6\n")
    cli_in(repo)  # an older lock, made the supported way
    old = next(line for line in (repo / "requirements-layer.txt").read_text().splitlines() if "threadpoolctl==" in line)
    edit(repo / "requirements.in", "threadpoolctl<3.6\n", "threadpoolctl\n")

    result = cli_in(repo, "--upgrade", "threadpoolctl")

    old_version = old.split("==")[1].split()[0]
    assert f"threadpoolctl {old_version} -> 3.8.0" in result.stdout, result.stdout
    for lock in ("requirements-layer.txt", "training/requirements.txt", "requirements-pipeline.txt"):
        assert "\nthreadpoolctl==3.8.0 " in (repo / lock).read_text(), lock
    report = json.loads((repo / "build" / "reports" / "lock-upgrade.json").read_text())
    assert report["asked"] == ["threadpoolctl"]
    moved = {p["name"]: (p["old"], p["new"], p["status"]) for p in report["packages"]}
    assert moved["threadpoolctl"] == (old_version, "3.8.0", "upgraded")
    assert moved["numpy"] == ("1.26.4", "1.26.4", "unchanged"), "not asked: not moved, not judged"
    checked = cli_in(repo, "--check")
    assert "fresh resolve identical" in checked.stdout


@pytest.mark.slow
def test_upgrade_everything_keeps_exact_pins_and_says_what_held_each_package(repo: Path) -> None:  # noqa: F811
    result = cli_in(repo, "--upgrade")

    report = json.loads((repo / "build" / "reports" / "lock-upgrade.json").read_text())
    held = {p["name"]: p["held_by"] for p in report["packages"]}
    assert held["scikit-learn"].startswith(f"{repo}/requirements.in:3 pins scikit-learn==1.3.2")
    assert held["numpy"] == "numpy<2.0 by scikit-learn 1.3.2", result.stdout
    assert held["python-dateutil"].endswith("by botocore 1.38.36"), "the runtime's botocore holds it"
    assert held["scipy"].startswith(("requires-python: scipy", "target wheels: scipy")), held["scipy"]
    assert "scikit-learn==1.3.2" in (repo / "requirements.in").read_text()
    assert check_locks(load_config(root=repo), None, resolve=True, uv_cache=CACHE / "uv").problems == []


@pytest.mark.slow
def test_naming_an_exact_pin_moves_it_in_every_in_file(repo: Path) -> None:  # noqa: F811
    result = cli_in(repo, "--upgrade", "scikit-learn")

    layer = {p["name"]: p for p in json.loads((repo / "build/reports/lock-upgrade.json").read_text())["packages"]}
    new = layer["scikit-learn"]["new"]
    assert Version(new) > Version("1.3.2") and f"scikit-learn 1.3.2 -> {new}" in result.stdout
    for in_file in ("requirements.in", "training/requirements.in"):
        assert f"\nscikit-learn=={new}\n" in (repo / in_file).read_text(), in_file
    assert "fresh resolve identical" in cli_in(repo, "--check").stdout
