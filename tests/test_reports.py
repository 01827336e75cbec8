"""The report contract (ci.reports): one shape for every check, bound to the bytes the check read.

Snapshot, then judge: a file swapped while a check runs must not inherit the check's verdict. The
real commands run here on small fixtures and their reports are read as deploy and GitHub read them.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest

from ci.config import load_config
from ci.deploy.artifacts import check_gate, local_artifacts
from ci.errors import CheckFailedError, PipelineError
from ci.layer import sources
from ci.paths import REPO_ROOT, BuildPaths
from ci.reports import Finding, findings_of, report_name, sha256_file, write_report
from ci.snapshot import take
from tests.abi_fixtures import pe_header
from tests.budget_fixtures import make_build

CONTRACT = {"format", "check", "passed", "artifacts", "findings"}


def paths_in(tmp_path: Path) -> BuildPaths:
    return BuildPaths(build=tmp_path / "build", cache=tmp_path / "cache")


def write_zip(path: Path, files: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def fake_build(paths: BuildPaths) -> None:
    """A clean layer (pure Python), a function zip and a model file: enough for abi and the gate."""
    write_zip(paths.layer_zip, {"python/fakelib/__init__.py": b"VERSION = 1\n"})
    write_zip(paths.function_zip, {"handler/__init__.py": b""})
    paths.model.parent.mkdir(parents=True, exist_ok=True)
    paths.model.write_bytes(b"model")
    built = [take(paths, paths.layer_zip, "layer.zip"), take(paths, paths.function_zip, "function.zip")]
    write_report(paths, "build", True, {"sources": sources.record(load_config(), paths)}, judged=built)


def abi_args(**given: Any) -> argparse.Namespace:
    return argparse.Namespace(zip=given.get("zip"), tree=given.get("tree"))


# --- B: snapshot, then judge ---------------------------------------------------------------------


def test_the_gate_accepts_what_was_judged_and_each_check_only_for_what_it_reads(tmp_path: Path) -> None:
    paths = paths_in(tmp_path)
    fake_build(paths)
    layer = take(paths, paths.layer_zip, "layer.zip")
    model = take(paths, paths.model, "model.joblib")
    write_report(paths, "abi", True, {}, judged=[layer])
    write_report(paths, "pins", True, {}, judged=[model])
    check_gate(paths, local_artifacts(paths), REPO_ROOT, checks=("abi", "pins"))
    write_report(paths, "pins", True, {}, judged=[])  # a pins report that read no model vouches for none
    with pytest.raises(CheckFailedError, match=r"pins: stale - it judged model.joblib nothing"):
        check_gate(paths, local_artifacts(paths), REPO_ROOT, checks=("pins",))


# --- the contract ---------------------------------------------------------------------------------


def test_a_failed_report_without_findings_derives_one_from_its_error(tmp_path: Path) -> None:
    paths = paths_in(tmp_path)
    target = write_report(paths, "deploy", False, {"error": "upload refused", "fix": "check the bucket policy"})
    report = json.loads(target.read_text())
    assert report.keys() >= CONTRACT and report["passed"] is False and report["artifacts"] == {}
    assert report["findings"] == [
        {"check": "deploy", "severity": "error", "message": "upload refused", "fix": "check the bucket policy",
         "file": None, "line": None}
    ]  # fmt: skip
    assert json.loads(write_report(paths, "deploy", True, {"status": "deployed"}).read_text())["findings"] == []


def test_the_contract_refuses_contradictions(tmp_path: Path) -> None:
    paths = paths_in(tmp_path)
    with pytest.raises(ValueError, match="passed but carries error findings"):
        write_report(paths, "abi", True, {}, findings=[Finding("abi", "error", "bad")])
    with pytest.raises(ValueError, match="reserved keys"):
        write_report(paths, "abi", True, {"artifacts": {}})
    with pytest.raises(ValueError, match="severity"):
        Finding("abi", "fatal", "bad")
    failed = json.loads(write_report(paths, "pins", False, {}, findings=[Finding("pins", "warning", "w")]).read_text())
    assert [f["severity"] for f in failed["findings"]] == ["warning", "error"], "a failure always carries an error"


def test_the_adhoc_rule_is_one_rule(tmp_path: Path) -> None:
    paths = paths_in(tmp_path)
    assert report_name(paths, "smoke", {"layer.zip": None, "model.joblib": paths.model}) == "smoke"
    assert report_name(paths, "smoke", {"layer.zip": tmp_path / "other.zip"}) == "smoke-adhoc"
    assert report_name(paths, "pins", {"model.json": tmp_path / "other.json"}) == "pins-adhoc"
    target = write_report(paths, "abi", True, {}, inputs={"layer.zip": tmp_path / "tree"})
    assert target.name == "abi-adhoc.json" and json.loads(target.read_text())["check"] == "abi-adhoc"


def test_findings_of_an_old_or_hand_written_report_still_say_it_failed() -> None:
    [finding] = findings_of({"passed": False, "error": "stopped"}, "build")
    assert (finding.severity, finding.message) == ("error", "stopped")
    assert findings_of({"passed": True, "findings": [{"severity": "odd", "message": "m", "line": 0}]}, "x") == [
        Finding("x", "error", "m")
    ]


# --- every check writes the contract: real commands on small fixtures ---------------------------


def test_abi_findings_land_on_the_distributions_pin(tmp_path: Path) -> None:
    from ci import cmd_abi

    paths = paths_in(tmp_path)
    fake_build(paths)
    write_zip(paths.layer_zip, {"python/numpy/helper.dll": pe_header(), "python/numpy/__init__.py": b""})
    with pytest.raises(CheckFailedError):
        cmd_abi.run(abi_args(), load_config(), paths)
    report = json.loads(paths.report("abi").read_text())
    assert report["passed"] is False and report["artifacts"] == {"layer.zip": sha256_file(paths.layer_zip)}
    [finding] = report["findings"]
    numpy_line = line_of(REPO_ROOT / "requirements-layer.txt", "numpy==")
    assert (finding["file"], finding["line"]) == ("requirements-layer.txt", numpy_line)
    assert finding["message"].startswith("numpy: 1 file(s) will not load") and "requirements.in" in finding["fix"]


def test_budget_report_has_its_findings_the_snapshots_it_read_and_a_relative_markdown(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    build = tmp_path / "build"
    paths = make_build(build)
    result = run_cli("-m", "ci", "--build-dir", str(build), "budget", "--limit-bytes", "1000", check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(paths.report("budget").read_text())
    assert report["passed"] is False
    assert report["artifacts"] == {
        "layer.zip": sha256_file(paths.layer_zip),
        "function.zip": sha256_file(paths.function_zip),
    }
    [finding] = report["findings"]
    assert finding["file"] == "requirements.in" and "exceeds the 1000-byte limit" in finding["message"]
    assert finding["fix"].startswith("remove or replace what is largest in requirements.in")
    markdown = (paths.reports / "budget.md").read_text()
    assert str(REPO_ROOT) not in markdown and str(tmp_path) not in markdown


def test_budget_md_names_a_repository_trace_relatively() -> None:
    from ci.budget.compute import smoke_trace
    from tests.budget_fixtures import write_smoke_trace

    paths = BuildPaths(build=REPO_ROOT / "build" / "test-reports-relative", cache=REPO_ROOT / "build" / "cache")
    try:
        paths.reports.mkdir(parents=True)
        write_smoke_trace(paths, ["six.py"], "0" * 64)
        trace = smoke_trace(paths, "0" * 64)
        assert trace is not None and trace.report == "build/test-reports-relative/reports/smoke.json"
    finally:
        shutil.rmtree(paths.build, ignore_errors=True)


def copy_repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for name in ("pipeline.toml", "requirements.in", "requirements-layer.txt", "requirements-dev.in",
                 "requirements-dev.txt", "requirements-pipeline.in", "requirements-pipeline.txt",
                 "requirements-bootstrap.txt", "training/requirements.in", "training/requirements.txt"):  # fmt: skip
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_ROOT / name, root / name)
    return root


def line_of(path: Path, prefix: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if line.startswith(prefix))


def run_failing_lock(tmp_path: Path) -> tuple[BuildPaths, int]:
    """`ci lock --check --offline` on a repository whose layer lock lost joblib's hashes; returns joblib's line."""
    from ci import cmd_lock

    root = copy_repo(tmp_path)
    lock = root / "requirements-layer.txt"
    text = lock.read_text()
    lock.write_text(
        re.sub(r"^joblib==1\.6\.0 \\\n(    --hash=\S+( \\)?\n)+", "joblib==1.6.0\n", text, flags=re.MULTILINE)
    )
    assert lock.read_text() != text
    paths = BuildPaths(build=tmp_path / "build", cache=REPO_ROOT / "build" / "cache")
    args = argparse.Namespace(
        check=True, no_resolve=True, offline=True, refresh=False, upgrade=False, upgrade_package=[]
    )
    with pytest.raises(PipelineError):
        cmd_lock.run(args, load_config(root=root), paths)
    return paths, line_of(lock, "joblib==")


def test_lock_problems_are_findings_on_the_lock_line_with_their_fix(tmp_path: Path) -> None:
    paths, line = run_failing_lock(tmp_path)
    report = json.loads(paths.report("lock").read_text())
    assert report["passed"] is False
    unhashed = [f for f in report["findings"] if "no --hash" in f["message"]]
    assert unhashed, report["findings"]
    assert (unhashed[0]["file"], unhashed[0]["line"]) == ("requirements-layer.txt", line)
    assert unhashed[0]["fix"] and unhashed[0]["message"].startswith("joblib: ")


def run_failing_pins(tmp_path: Path, bundles: Path) -> tuple[BuildPaths, int]:
    """`ci pins` on a build whose training lock pins another joblib than the layer lock; returns that line."""
    from ci import cmd_pins
    from tests.pins_fixtures import bundle, edited_lock

    trained = bundle(bundles, "model")
    root = copy_repo(tmp_path)
    training = root / "training" / "requirements.txt"
    _, line = edited_lock(training, training, "joblib==1.6.0", "joblib==1.5.0")
    paths = paths_in(tmp_path)
    paths.model_dir.mkdir(parents=True)
    shutil.copyfile(trained.model, paths.model)
    shutil.copyfile(trained.manifest, paths.model_manifest)
    with pytest.raises(CheckFailedError):
        cmd_pins.run(argparse.Namespace(model=None, manifest=None, installed=False), load_config(root=root), paths)
    return paths, line


def test_pins_mismatch_is_a_finding_on_the_training_lock_line(local_bundles: Path, tmp_path: Path) -> None:  # noqa: F811
    paths, line = run_failing_pins(tmp_path, local_bundles)
    report = json.loads(paths.report("pins").read_text())
    assert report["passed"] is False and report["artifacts"] == {"model.joblib": sha256_file(paths.model)}
    [mismatch] = [f for f in report["findings"] if f["severity"] == "error"]
    assert (mismatch["file"], mismatch["line"]) == ("training/requirements.txt", line)
    assert "joblib 1.5.0" in mismatch["message"] and "constrain the training lock" in mismatch["fix"]


from tests.pins_fixtures import local_bundles  # noqa: E402,F401 - fixture
