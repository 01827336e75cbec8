"""The layering is import-linter's contracts in pyproject.toml (run by `make lint`); here, that they bite.

Each case is a small tree named like the repository's packages, checked against the repository's own
contracts: a violation a contract must catch, including imports inside functions and under TYPE_CHECKING.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from ci.paths import REPO_ROOT

LINT_IMPORTS = REPO_ROOT / ".venv" / "bin" / "lint-imports"
CLEAN = {
    "ci/__init__.py": "",
    "ci/layer/__init__.py": "",
    "ci/layer/build.py": "from ci.layer import state\n",
    "ci/layer/state.py": "",
    "ci/deploy/__init__.py": "",
    "ci/deploy/deployer.py": "from ci.layer.state import *\n",
    **{f"ci/{name}/__init__.py": "" for name in ("budget", "lock", "github", "smoke")},
    "ci/cli.py": "",
    "handler/__init__.py": "",
    "handler/app.py": "import json\n",
    "training/__init__.py": "",
    "training/train.py": "from ci.smoke import *\n",
}

TYPE_CHECKING_CYCLE = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ci.deploy import deployer\n"


def lint(tree: dict[str, str], root: Path) -> subprocess.CompletedProcess[str]:
    for name, text in tree.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "pyproject.toml").write_text((REPO_ROOT / "pyproject.toml").read_text())
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_repository_keeps_its_contracts() -> None:
    result = subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    assert "0 broken" in result.stdout


def test_a_clean_tree_passes(tmp_path: Path) -> None:
    result = lint(CLEAN, tmp_path)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(
    ("change", "broken"),
    [
        ({"handler/app.py": "def late():\n    from ci.layer import build\n"}, "handler/ runs on Lambda"),
        ({"training/train.py": "import ci.deploy.deployer\n"}, "training/ makes the model"),
        ({"ci/layer/state.py": TYPE_CHECKING_CYCLE}, "depends on itself through another"),
        ({"ci/layer/state.py": "def late():\n    from ci.layer.build import x\n"}, "depends on itself through another"),
    ],
)
def test_a_violation_breaks_the_contract_that_names_it(tmp_path: Path, change: dict[str, str], broken: str) -> None:
    result = lint({**CLEAN, **change}, tmp_path)
    assert result.returncode == 1, result.stdout
    assert broken in result.stdout and "1 broken" in result.stdout
