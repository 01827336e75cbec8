"""arm64 on an x86_64 host: the layer is built from the aarch64 wheels, every ELF file is aarch64, and what
needs aarch64 code to run is proven under emulation (qemu) or recorded as missing, which deploy refuses."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ci.arch import interpreter, sysroot
from ci.arch.interpreter import EMULATED, MISSING, NATIVE, find_interpreter
from ci.config import load_config
from ci.deploy.artifacts import check_gate, local_artifacts
from ci.errors import CheckFailedError
from ci.paths import REPO_ROOT, BuildPaths
from tests.conftest import run_cli

SHARED_CACHE = REPO_ROOT / "build" / "cache"  # arm64 wheels land beside x86_64 ones


def arm64_config(tmp_path: Path) -> Path:
    text = (REPO_ROOT / "pipeline.toml").read_text()
    file = tmp_path / "arm64.toml"
    file.write_text(text.replace('architecture = "x86_64"', 'architecture = "arm64"', 1))
    assert 'architecture = "arm64"' in file.read_text()
    return file


def cli(config: Path, paths: BuildPaths, *args: str, check: bool = True) -> str:
    argv = ["--config", str(config), "--build-dir", str(paths.build), "--cache-dir", str(paths.cache)]
    result = run_cli("-m", "ci", *argv, *args, check=check)
    return result.stdout + result.stderr


def test_the_target_interpreter_is_native_emulated_or_missing_with_the_fix(tmp_path: Path, monkeypatch) -> None:
    target = load_config(overrides={"target": {"architecture": "arm64"}}).target
    assert find_interpreter(target, tmp_path, host="aarch64").mode == NATIVE
    monkeypatch.setattr(shutil, "which", lambda name: None)
    missing = find_interpreter(target, tmp_path, host="x86_64")
    assert missing.mode == MISSING and missing.python is None
    assert missing.proof().startswith("missing: no aarch64 interpreter on this x86_64 host")
    assert "qemu-user-static" in missing.detail and "python -m ci.arch.sysroot" in missing.detail
    assert "ubuntu-24.04-arm" in missing.detail
    guest = sysroot.location(tmp_path, "aarch64") / "usr" / "bin" / "python3.11"
    guest.parent.mkdir(parents=True)
    guest.write_text("")
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    emulated = find_interpreter(target, tmp_path, host="x86_64")
    assert emulated.mode == EMULATED and emulated.proof().startswith("proven under emulation (qemu-aarch64-static")
    wrapper = Path(str(emulated.python)).read_text()
    assert wrapper == f'#!/bin/sh\nexec /usr/bin/qemu-aarch64-static -L "{guest.parents[2]}" "{guest}" "$@"\n'


def test_the_runner_of_each_architecture_comes_from_the_config() -> None:
    assert load_config().value("target", "runner") == "ubuntu-24.04"
    assert load_config(overrides={"target": {"architecture": "arm64"}}).value("target", "runner") == "ubuntu-24.04-arm"


def test_an_arm64_build_without_an_aarch64_interpreter_is_all_aarch64_and_deploy_names_the_missing_proofs(
    tmp_path: Path,
) -> None:
    """On this host with no emulation: install, prune (no strip), ABI check; the proofs are missing, by name."""
    config = arm64_config(tmp_path)
    paths = BuildPaths(build=tmp_path / "build", cache=tmp_path / "cache")  # no sysroot in this cache
    paths.cache.mkdir()
    # Downloads, unpacked wheels and layers, compressed zip entries: named by content, safe to share.
    for shared in ("wheels", "unpacked", "unpacked-layers", "deflate"):
        (SHARED_CACHE / shared).mkdir(parents=True, exist_ok=True)
        (paths.cache / shared).symlink_to(SHARED_CACHE / shared)
    output = cli(config, paths, "build")
    assert "WARNING:  proofs missing: imports, trace" in output
    build = json.loads(paths.report("build").read_text())
    assert build["target"]["architecture"] == "arm64" and build["interpreter"]["mode"] == MISSING
    assert set(build["proofs"]) == {"imports", "trace"}
    assert all(how.startswith("missing: no aarch64 interpreter") for how in build["proofs"].values())
    assert build["rules"]["strip"]["files"] == 0 and build["rules"]["strip"]["failed"]["*"].startswith("not applied")
    assert any("aarch64" in name for name in build["wheels"]) and not any("x86_64" in name for name in build["wheels"])

    cli(config, paths, "abi")
    abi = json.loads(paths.report("abi").read_text())
    assert abi["passed"] and abi["violations"] == []
    assert abi["machines"] == {"EM_AARCH64": abi["elf_files"]} and abi["elf_files"] > 200
    assert abi["target"]["extension_suffix"] == "cpython-311-aarch64-linux-gnu"

    paths.model.parent.mkdir(parents=True)
    paths.model.write_bytes(b"a model")  # never read: nothing runs without an interpreter
    smoke = cli(config, paths, "smoke", check=False)
    assert "smoke did not run: no aarch64 interpreter" in smoke
    smoke_report = json.loads(paths.report("smoke").read_text())
    assert not smoke_report["passed"] and smoke_report["proofs"]["invocation"].startswith("missing")

    with pytest.raises(CheckFailedError) as refused:
        check_gate(paths, local_artifacts(paths), REPO_ROOT)
    message = str(refused.value)
    for named in (
        "build: proof missing - imports",
        "build: proof missing - trace",
        "smoke: proof missing - invocation",
    ):
        assert named in message
    assert "emulation" in refused.value.fix


def emulation_ready() -> str:
    target = load_config(overrides={"target": {"architecture": "arm64"}}).target
    found = interpreter.find_interpreter(target, REPO_ROOT / "build" / "cache")
    return "" if found.available else found.detail


@pytest.mark.slow
@pytest.mark.cost(50)  # under qemu: the build's imports, trace and proof, then smoke
@pytest.mark.skipif(bool(emulation_ready()), reason=f"needs aarch64 emulation: {emulation_ready()}")
def test_an_emulated_arm64_build_proves_imports_trace_and_smoke_and_deploy_names_only_the_limits(
    tmp_path: Path, trained_model: BuildPaths
) -> None:
    config = arm64_config(tmp_path)
    paths = BuildPaths(build=tmp_path / "build", cache=REPO_ROOT / "build" / "cache")
    shutil.copytree(trained_model.model_dir, paths.model_dir)
    cli(config, paths, "build")
    build = json.loads(paths.report("build").read_text())
    assert build["interpreter"]["mode"] == EMULATED
    assert set(build["proofs"]) == {"imports", "strip", "trace"}
    assert all(how.startswith("proven under emulation") for how in build["proofs"].values())
    assert build["rules"]["strip"]["files"] > 0 and not build["rules"]["strip"]["restored"]
    assert build["bytecode"]["files"] > 0 and build["bytecode"]["proof"]["same_answers"]
    cli(config, paths, "abi")
    assert json.loads(paths.report("abi").read_text())["machines"] == {"EM_AARCH64": 251}
    cli(config, paths, "smoke")
    smoke = json.loads(paths.report("smoke").read_text())
    assert smoke["passed"] and all(event["passed"] for event in smoke["events"])
    assert smoke["proofs"]["invocation"].startswith("proven under emulation")
    assert smoke["proofs"]["limits"].startswith("missing: init time and peak memory were measured under emulation")
    for check in ("budget", "pins"):
        cli(config, paths, check)
    with pytest.raises(CheckFailedError) as refused:
        check_gate(paths, local_artifacts(paths), REPO_ROOT)
    problems = [line.strip() for line in str(refused.value).splitlines()[1:] if line.startswith("    ")]
    assert [p.split(":")[0] + ":" + p.split(":")[1] for p in problems] == ["smoke: proof missing - limits"]


@pytest.mark.skipif(bool(emulation_ready()), reason=f"needs aarch64 emulation: {emulation_ready()}")
def test_the_emulated_interpreter_loads_its_standard_library_from_bytecode_compiled_once() -> None:
    """Unpacked .debs hold no bytecode: the sysroot compiles it once, else every emulated start compiles ~200
    modules again (~2 s each under qemu)."""
    target = load_config(overrides={"target": {"architecture": "arm64"}}).target
    found = interpreter.find_interpreter(target, REPO_ROOT / "build" / "cache")
    run = subprocess.run([str(found.python), "-v", "-c", "import decimal"], capture_output=True, text=True, check=True)
    stdlib = sysroot.location(REPO_ROOT / "build" / "cache", "aarch64") / "usr" / "lib" / "python3.11"
    assert f"# code object from '{stdlib}/__pycache__/decimal.cpython-311.pyc'" in run.stderr
