"""python3.12 for real, beside the committed target: the same lock built into a cp312 layer, checked
against AL2023's glibc 2.34 and answered by a Python 3.12 `awslambdaric` (docs/runtimes.md)."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from ci.config import load_config
from ci.paths import BuildPaths
from tests.config_fixtures import TARGET, edited_config, needs_python
from tests.conftest import run_cli

RUNTIME = "python3.12"


@pytest.mark.slow
@pytest.mark.cost(20)  # a cp312 layer built, ABI-checked and smoke-tested
@pytest.mark.skipif(TARGET.runtime.name == RUNTIME, reason="the committed target: the session build covers it")
@needs_python("3.12")
def test_a_python312_layer_builds_passes_abi_and_smoke(trained_model: BuildPaths, tmp_path: Path) -> None:
    config_file = edited_config(tmp_path, "target", "runtime", f'runtime = "{RUNTIME}"')
    target = load_config(file=config_file).target
    assert (target.runtime.python, target.glibc, target.uv_platform) == ("3.12", "2.34", "x86_64-manylinux_2_34")
    build = tmp_path / "build"
    shutil.copytree(trained_model.model_dir, build / "model")
    ci = ["-m", "ci", "--config", str(config_file), "--build-dir", str(build), "--cache-dir", str(trained_model.cache)]

    run_cli(*ci, "build")
    run_cli(*ci, "abi")
    run_cli(*ci, "smoke")

    with zipfile.ZipFile(build / "layer.zip") as layer:
        names = layer.namelist()
    extensions = [name for name in names if name.endswith(".so") and ".cpython-" in name]
    assert len(extensions) > 200 and all(".cpython-312-x86_64-linux-gnu.so" in name for name in extensions)
    assert any(name.endswith(".cpython-312.pyc") for name in names) and not any(".cpython-311" in n for n in names)
    abi = json.loads((build / "reports" / "abi.json").read_text())
    assert abi["passed"] and abi["target"] == {
        "runtime": RUNTIME,
        "architecture": "x86_64",
        "glibc": "2.34",
        "extension_suffix": "cpython-312-x86_64-linux-gnu",
    }
    smoke = json.loads((build / "reports" / "smoke.json").read_text())
    assert smoke["passed"] and smoke["runtime"] == RUNTIME and smoke["partial"] is False
    traced = smoke["import_trace"]["files"]
    assert any(name.startswith("python/numpy/core/_multiarray_umath.cpython-312") for name in traced)
    assert list((trained_model.cache).glob(f"runtime-{RUNTIME}-*/awslambdaric")), "the 3.12 runtime's own packages"
