"""Snapshot, then judge: a layer.zip swapped while `ci abi` runs must not inherit abi's verdict.

The check reads a snapshot of the zip; its report names that snapshot's digest, so the deploy gate,
which compares the reports' digests with the files about to be uploaded, refuses the swapped file.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import ci.abi
from ci import cmd_abi
from ci.config import load_config
from ci.deploy.artifacts import check_gate, local_artifacts
from ci.errors import CheckFailedError
from ci.paths import REPO_ROOT, BuildPaths
from ci.reports import sha256_file
from tests.abi_fixtures import pe_header
from tests.test_reports import write_zip


def test_a_layer_swapped_while_abi_runs_is_refused_by_the_gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = BuildPaths(build=tmp_path / "build", cache=tmp_path / "cache")
    write_zip(paths.layer_zip, {"python/fakelib/__init__.py": b"VERSION = 1\n"})
    write_zip(paths.function_zip, {"handler/__init__.py": b""})
    paths.model.parent.mkdir(parents=True)
    paths.model.write_bytes(b"model")
    judged_sha = sha256_file(paths.layer_zip)
    bad = write_zip(tmp_path / "bad.zip", {"python/evil/helper.dll": pe_header()})
    real_scan = ci.abi.scan_tree

    def scan_then_swap(root: Path, target: Any) -> Any:
        scan = real_scan(root, target)  # the clean bytes are judged...
        shutil.copyfile(bad, paths.layer_zip)  # ...and the file is swapped before the report is written
        return scan

    monkeypatch.setattr(ci.abi, "scan_tree", scan_then_swap)
    assert cmd_abi.run(argparse.Namespace(zip=None, tree=None), load_config(), paths) == 0

    with pytest.raises(CheckFailedError, match=r"abi: stale - it judged layer.zip"):
        check_gate(
            paths, local_artifacts(paths), REPO_ROOT, checks=("abi",)
        )  # the .dll is never deployed on abi's word
    report = json.loads(paths.report("abi").read_text())
    assert report["passed"] is True
    assert report["artifacts"] == {"layer.zip": judged_sha}, "the report names the bytes judged, not the swapped file"
