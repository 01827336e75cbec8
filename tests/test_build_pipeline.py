"""The whole build (fetch -> ... -> zip) on a tiny offline lock: a hand-made wheel already in the cache.

Seconds instead of minutes, and it can break on purpose: a module imported only inside the
handler lives in a `tests/` directory, and the build must fail naming that rule and path.
"""

from __future__ import annotations

import base64
import hashlib
import json
import pickle
import zipfile
from pathlib import Path

import pytest

from ci.config import Config, load_config
from ci.errors import CheckFailedError
from ci.layer.build import build_layer
from ci.paths import REPO_ROOT, BuildPaths
from tests.config_fixtures import PYC_TAG

WHEEL_FILES = {
    "demo/__init__.py": "from demo import testing\nfrom demo.core import double\n",
    "demo_single.py": "SINGLE = 1\n",
    "demo/testing/__init__.py": "HELPERS = 1\n",
    "demo/core.py": "def double(x):\n    return 2 * x\n\ndef lazy():\n    from demo.tests import fixtures\n"
    "    return fixtures.VALUE\n",
    "demo/core.pyi": "def double(x: int) -> int: ...\n",
    "demo/py.typed": "",
    "demo/tests/__init__.py": "",
    "demo/tests/fixtures.py": "VALUE = 5\n",
    "demo-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n",
    "demo-1.0.dist-info/LICENSE": "MIT\n",
    "demo-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    "demo-1.0.dist-info/RECORD": "",
}
HANDLER = """
import json
import demo
import demo.core
import demo_single


def lambda_handler(event, context):
    if event.get("lazy"):
        try:
            return {"value": demo.core.lazy()}
        except Exception as exc:
            print(json.dumps({"level": "error", "error": f"{type(exc).__name__}: {exc}"}))
            return {"error": {"status": 500, "field": None, "message": "internal error"}}
    return {"value": demo.double(event["x"])}
"""


def make_project(
    root: Path, events: list[dict], extra_files: dict[str, str] | None = None
) -> tuple[Config, BuildPaths]:
    cache = root / "cache"
    (cache / "wheels").mkdir(parents=True)
    wheel = cache / "wheels" / "demo-1.0-py3-none-any.whl"
    files = {name: text.encode() for name, text in {**WHEEL_FILES, **(extra_files or {})}.items()}
    record = "".join(  # every file hashed, as the wheel spec (and the build's install) requires
        f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}\n"
        for name, data in files.items()
        if not name.endswith("/RECORD")
    )
    files["demo-1.0.dist-info/RECORD"] = (record + "demo-1.0.dist-info/RECORD,,\n").encode()
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    (root / "requirements-layer.txt").write_text(f"demo==1.0 \\\n    --hash=sha256:{digest}\n")
    (root / "pipeline.toml").write_text((REPO_ROOT / "pipeline.toml").read_text())
    (root / "handler").mkdir()
    (root / "handler" / "__init__.py").write_text("")
    (root / "handler" / "app.py").write_text(HANDLER)
    (root / "handler" / "test_app.py").write_text("def test(): pass\n")
    (root / "events").mkdir()
    for index, event in enumerate(events):
        (root / "events" / f"e{index}.json").write_text(json.dumps({"description": "", "event": event, "expect": {}}))
    config = load_config(root, overrides={"smoke": {"events": "events"}})
    paths = BuildPaths(build=root / "build", cache=cache)
    paths.model_dir.mkdir(parents=True)
    paths.model.write_bytes(pickle.dumps({"unused": "by this handler"}))  # a pickle the scan accepts
    return config, paths


def test_the_build_reads_as_steps_and_proves_each(ci_log: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    config, paths = make_project(tmp_path, [{"x": 2}, {"x": 3}])
    data = build_layer(config, paths)
    lines = ci_log.messages
    steps = [line.split(":", 1)[0] for line in lines if not line.startswith(" ")]
    assert steps == [
        "machine", "fetch", "install", "pristine", "prune", "abi", "verify", "function", "trace", "bytecode", "prove",
        "zip",
    ]  # fmt: skip
    assert "runs natively" in lines[0] and "no network" in lines[1]
    assert set(data["proofs"]) == {"imports", "strip", "trace"}
    assert all(how.startswith("proven natively") for how in data["proofs"].values())
    assert data["rules"]["tests"]["paths"] == ["demo/tests/__init__.py", "demo/tests/fixtures.py"]
    assert data["rules"]["tests"]["spared"] == ["demo/testing/__init__.py"], "imported at import time: kept"
    assert data["rules"]["stubs"]["paths"] == ["demo/core.pyi"]
    assert data["rules"]["bookkeeping"]["paths"] == ["demo-1.0.dist-info/RECORD", "demo-1.0.dist-info/WHEEL"]
    assert data["top_level"] == {"demo": "demo", "demo-1.0.dist-info": "demo", "demo_single.py": "demo"}
    assert data["distributions"]["demo"]["version"] == "1.0"
    assert data["verify"]["new_failures"] == {} and data["import_trace"]["workload"] == "events"
    assert data["bytecode"]["proof"] == {"events": 2, "same_answers": True}
    with zipfile.ZipFile(paths.layer_zip) as zf:
        layer = set(zf.namelist())
    assert {
        "python/demo/__init__.py",
        f"python/demo/__pycache__/__init__.{PYC_TAG}.pyc",
        "python/demo/core.py",
        f"python/demo/__pycache__/core.{PYC_TAG}.pyc",
        f"python/demo/testing/__pycache__/__init__.{PYC_TAG}.pyc",
        "python/demo-1.0.dist-info/METADATA",
        "python/demo-1.0.dist-info/LICENSE",
    } <= layer
    assert not [name for name in layer if "/tests/" in name or name.endswith((".pyi", "RECORD"))]
    assert f"python/__pycache__/demo_single.{PYC_TAG}.pyc" in layer
    assert data["distributions"]["demo"]["files"] == len(layer), "top-level bytecode is credited to its module's owner"
    with zipfile.ZipFile(paths.function_zip) as zf:
        function = set(zf.namelist())
    assert "handler/app.py" in function and f"handler/__pycache__/app.{PYC_TAG}.pyc" in function
    assert "handler/test_app.py" not in function

    elsewhere = BuildPaths(build=tmp_path / "again", cache=paths.cache)
    elsewhere.model_dir.mkdir(parents=True)
    elsewhere.model.write_bytes(paths.model.read_bytes())
    again = build_layer(config, elsewhere)
    assert again["layer"]["sha256"] == data["layer"]["sha256"]


def test_compact_profile_ships_sourceless_runtime_modules_and_drops_what_the_trace_never_used(tmp_path: Path) -> None:
    config, paths = make_project(tmp_path, [{"x": 2}])
    compact = {"sourceless": True, "prune_unimported": True}
    config = load_config(tmp_path, overrides={"smoke": {"events": "events"}, "build": compact})
    data = build_layer(config, paths)
    with zipfile.ZipFile(paths.layer_zip) as zf:
        layer = set(zf.namelist())
    assert "python/demo/core.pyc" in layer and "python/demo/core.py" not in layer
    assert "python/demo_single.pyc" in layer and data["top_level"]["demo_single.pyc"] == "demo"
    assert data["distributions"]["demo"]["files"] == len(layer)
    assert "python/demo-1.0.dist-info/METADATA" in layer and "python/demo-1.0.dist-info/LICENSE" in layer
    assert data["bytecode"]["sourceless"] is True and data["bytecode"]["proof"]["same_answers"]
    assert data["verify_after_bytecode"]["new_failures"] == {}


def test_a_rule_that_breaks_the_handler_fails_the_build_naming_rule_and_path(tmp_path: Path) -> None:
    config, paths = make_project(tmp_path, [{"x": 2}, {"lazy": True}])
    paths.build.mkdir(parents=True, exist_ok=True)
    paths.layer_zip.write_bytes(b"a previous build's layer")
    with pytest.raises(CheckFailedError) as info:
        build_layer(config, paths)
    text = str(info.value)
    assert "No module named 'demo.tests'" in text
    assert "rule 'tests' removed/changed demo/tests/__init__.py" in text
    assert "build.keep" in info.value.fix
    assert not paths.layer_zip.exists(), "a failed build leaves no zip that could pass for its own"

    kept = load_config(tmp_path, overrides={"smoke": {"events": "events"}, "build": {"keep": ["demo/tests/*"]}})
    data = build_layer(kept, paths)
    assert data["rules"]["tests"]["files"] == 0


def test_runtime_bytecode_without_a_model_is_refused_not_shipped_slow(tmp_path: Path) -> None:
    """Without the model the trace sees only the handler's own imports: the layer would pass every check
    and then recompile most modules at every cold start. The build says so instead."""
    config, paths = make_project(tmp_path, [{"x": 2}])
    paths.model.unlink()
    with pytest.raises(CheckFailedError) as info:
        build_layer(config, paths)
    assert "build.bytecode = 'runtime' needs an import trace" in str(info.value)
    assert str(paths.model) in str(info.value)
    assert f"python -m training --out-dir {paths.model_dir}" in info.value.fix
    assert not paths.layer_zip.exists()

    without = load_config(tmp_path, overrides={"smoke": {"events": "events"}, "build": {"bytecode": "none"}})
    assert build_layer(without, paths)["bytecode"]["files"] == 0


def test_two_builds_of_one_directory_take_turns(ci_log: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    config, paths = make_project(tmp_path, [{"x": 2}])
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = [pool.submit(build_layer, config, paths) for _ in range(2)]
        digests = [run.result()["layer"]["sha256"] for run in runs]
    assert digests[0] == digests[1]
    assert any(line.startswith("waiting:") for line in ci_log.messages)


def test_a_host_of_another_architecture_builds_without_executing_and_names_the_missing_proofs(
    ci_log: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """No interpreter of the target's machine (no emulation in this cache): nothing of the layer runs, nothing
    is stripped or compiled, and build.json says which proofs are missing and how to make them."""
    import platform

    config, paths = make_project(tmp_path, [{"x": 2}])
    other = "arm64" if platform.machine() == "x86_64" else "x86_64"
    config = load_config(tmp_path, overrides={"smoke": {"events": "events"}, "target": {"architecture": other}})
    data = build_layer(config, paths)
    assert set(data["proofs"]) == {"imports", "trace"}
    assert all(how.startswith(f"missing: no {config.target.machine} interpreter") for how in data["proofs"].values())
    assert data["verify"] == {"skipped": data["proofs"]["imports"]} and data["bytecode"]["files"] == 0
    assert data["rules"]["strip"]["failed"]["*"].startswith("not applied")
    assert any(line.startswith("WARNING:  proofs missing: imports, trace") for line in ci_log.messages)
    assert paths.layer_zip.is_file()


def test_build_json_lists_the_traced_paths_and_the_budget_reads_them_without_a_smoke_report(tmp_path: Path) -> None:
    """On pull requests the budget job runs beside the smoke job: the build's own trace must be usable."""
    from ci.budget.compute import compute_budget, gather_inputs
    from ci.reports import write_report

    config, paths = make_project(tmp_path, [{"x": 2}])
    data = build_layer(config, paths)
    traced = data["import_trace"]
    assert traced["workload"] == "events"
    assert {"workload", "modules", "files", "bytes", "distributions", "warnings"} <= set(traced)
    assert traced["paths"] == sorted(traced["paths"]) and traced["files"] == len(traced["paths"])
    assert {"demo/__init__.py", "demo/core.py", "demo/testing/__init__.py", "demo_single.py"} <= set(traced["paths"])
    assert not [path for path in traced["paths"] if path.startswith(("python/", "/")) or "/tests/" in path]

    write_report(paths, "build", True, data)
    imports = compute_budget(gather_inputs(config, paths)).imports
    assert imports is not None and (imports.source, imports.same_layer) == ("build", True)
    assert [use.name for use in imports.distributions] == ["demo"] and imports.never_imported == []

    paths.model.unlink()  # no model: the trace only imports the handler, which the budget must not rely on
    without = load_config(tmp_path, overrides={"smoke": {"events": "events"}, "build": {"bytecode": "none"}})
    data = build_layer(without, paths)
    assert data["import_trace"]["workload"] == "import-only" and "paths" not in data["import_trace"]
    write_report(paths, "build", True, data)
    assert compute_budget(gather_inputs(config, paths)).imports is None
