"""A lock broken the way Dependabot breaks it (one pin bumped in place, hashes and all) is annotated
on the very line, in the lock it is in, with the fix; the other locks say which lock "here" is.

Real components: the committed locks copied, PyPI's JSON API for the new version's hashes (cached
in build/cache), uv for the fresh resolve, and `python -m ci.github annotate` on the report.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from ci.config import load_config
from ci.errors import PipelineError
from ci.paths import REPO_ROOT, BuildPaths
from ci.pip import SimpleIndex
from tests.test_github_annotate import ci_github
from tests.test_reports import copy_repo, line_of

CACHE = REPO_ROOT / "build" / "cache"


def bump_in_place(lock: Path, name: str, old: str, new: str, hashes: list[str]) -> None:
    """What a Dependabot pip update does to a hashed lock: the version and its hashes, nothing else."""
    text = lock.read_text()
    block = re.search(
        rf"^{re.escape(name)}=={re.escape(old)} \\\n(?:    --hash=\S+(?: \\)?\n)+", text, flags=re.MULTILINE
    )
    assert block, f"{name}=={old} not in {lock}"
    replacement = f"{name}=={new} \\\n" + " \\\n".join(f"    --hash=sha256:{h}" for h in hashes) + "\n"
    lock.write_text(text.replace(block.group(0), replacement))


def test_an_in_place_bump_is_annotated_on_its_line_with_the_upgrade_fix(tmp_path: Path) -> None:
    root = copy_repo(tmp_path)
    layer = root / "requirements-layer.txt"
    index = SimpleIndex("https://pypi.org/simple", CACHE / "pypi-simple")
    hashes = sorted(f.sha256 for f in index.project("pandas", fresh=True).files_of("3.0.6") if f.sha256)
    assert hashes, "pandas 3.0.6 is on PyPI"
    bump_in_place(layer, "pandas", "2.3.2", "3.0.6", hashes)
    line = line_of(layer, "pandas==")
    paths = BuildPaths(build=tmp_path / "build", cache=CACHE)
    args = argparse.Namespace(
        check=True, no_resolve=False, offline=False, refresh=False, upgrade=None, upgrade_package=[]
    )
    from ci import cmd_lock

    with pytest.raises(PipelineError):
        cmd_lock.run(args, load_config(root=root), paths)

    result = ci_github("annotate", str(paths.reports), "--check", "lock")
    errors = [row for row in result.stdout.splitlines() if row.startswith("::error")]
    on_layer = [row for row in errors if row.startswith(f"::error file=requirements-layer.txt,line={line},")]
    assert on_layer, errors
    assert "pandas 3.0.6 -> 2.3.2" in on_layer[0]
    assert "fix: run `python -m ci lock` and commit requirements-layer.txt" in on_layer[0]
    assert "`python -m ci lock --upgrade pandas`" in on_layer[0]
    # the other locks still pin 2.3.2: each annotation names its own lock, not "here"
    training_line = line_of(root / "training" / "requirements.txt", "pandas==")
    on_training = [
        row for row in errors if row.startswith(f"::error file=training/requirements.txt,line={training_line},")
    ]
    assert (
        on_training
        and "pinned 2.3.2 in training/requirements.txt but 3.0.6 in requirements-layer.txt:" in (on_training[0])
    )
    assert not [row for row in errors if "here but" in row]
    assert all("line=" in row for row in errors), "every lock problem points at a line"
