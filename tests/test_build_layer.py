"""The real layer, built once per session from the committed lock (built_layer): build.json's contract and
imports in the isolated interpreter. The rebuild of the same lock from the warm cache, which must give the
same sha256, is the budget's baseline build (test_budget_cli.py): one build proves both."""

from __future__ import annotations

import json
import zipfile

import pytest

from ci.arch.interpreter import run_isolated, target_python
from ci.lock.lockfile import read_lock
from ci.paths import REPO_ROOT, BuildPaths
from tests.config_fixtures import PYTHON

pytestmark = pytest.mark.slow


def build_report(paths: BuildPaths) -> dict:
    return json.loads(paths.report("build").read_text())


def test_build_json_keeps_the_contract(built_layer: BuildPaths) -> None:
    report = build_report(built_layer)
    assert report["passed"] is True and report["check"] == "build"
    for artifact in ("layer", "function"):
        assert set(report[artifact]) >= {"sha256", "zipped_bytes", "unzipped_bytes", "files"}
    assert report["artifacts"]["layer.zip"] == report["layer"]["sha256"]
    for name in ("tests", "sources", "stubs", "bookkeeping", "strip"):
        rule = report["rules"][name]
        assert rule["files"] > 0 and rule["bytes"] > 0 and 0 < len(rule["paths"]) <= 20
    lock = read_lock(REPO_ROOT / "requirements-layer.txt")
    versions = {name: facts["version"] for name, facts in report["distributions"].items()}
    assert {name: pin.version for name, pin in lock.pins.items()} == {
        name.lower().replace("_", "-"): version for name, version in versions.items()
    }
    assert report["top_level"]["sklearn"] == "scikit-learn" and report["top_level"]["scipy.libs"] == "scipy"
    assert report["bytecode"]["mode"] == "runtime" and report["bytecode"]["files"] > 500
    assert {"fetch", "install", "prune", "verify", "abi", "bytecode", "zip", "total"} <= set(report["timings"])


def test_the_layer_fits_with_headroom_and_keeps_what_libraries_need(built_layer: BuildPaths) -> None:
    report = build_report(built_layer)
    assert report["layer"]["unzipped_bytes"] <= 236_000_000  # 10% under Lambda's 262,144,000 with bytecode
    with zipfile.ZipFile(built_layer.layer_zip) as zf:
        names = zf.namelist()
    assert all(name.startswith("python/") for name in names)
    assert "python/scikit_learn-1.3.2.dist-info/METADATA" in names
    assert not [n for n in names if "/tests/" in n or n.endswith((".pyx", ".pyi", "/RECORD"))]
    assert any(n.startswith("python/numpy/testing/") for n in names), "imported by other packages: kept"
    assert any(n.startswith("python/scipy.libs/libscipy_openblas") for n in names)


def test_every_import_passes_in_the_isolated_interpreter(built_layer: BuildPaths) -> None:
    report = build_report(built_layer)
    assert report["verify"]["new_failures"] == {}
    assert set(report["verify"]["failures"]) == set(report["verify"]["pristine_failures"])
    assert report["verify"]["checked"] > 200
    site = built_layer.layer_tree / "python"
    code = (
        "import sklearn, pandas, scipy.special; from importlib.metadata import version; print(version('scikit-learn'))"
    )
    run = run_isolated(target_python(PYTHON), [site], code)
    assert run.stdout.strip() == "1.3.2", run.stderr


def test_function_zip_holds_the_handler_package_alone(built_layer: BuildPaths) -> None:
    with zipfile.ZipFile(built_layer.function_zip) as zf:
        names = zf.namelist()
    assert "handler/app.py" in names
    assert all(name.startswith("handler/") for name in names)
    assert not [n for n in names if "test" in n.rsplit("/", 1)[-1]]
