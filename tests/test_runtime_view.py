"""A runtime dependency whose own dependencies the Lambda runtime provides: `requests`, whose urllib3 the
python3.x runtimes ship in /var/runtime. Real wheels from PyPI, the real resolver and the build's own steps.

The lock leaves urllib3 out and says so, with the runtime's version; the build imports and traces the layer
with the runtime's packages behind it, as Lambda does (and smoke did already); bundling urllib3 instead is
one setting; an import the locks cannot satisfy is named as such, never blamed on a pruning rule.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import pytest

from ci.arch.interpreter import target_python
from ci.config import Config, load_config, shipped_packages
from ci.errors import CheckFailedError, ConfigError, PipelineError
from ci.layer import verify
from ci.layer.build import build_layer
from ci.layer.verify import Runner
from ci.lock.check import check_against_in, check_runtime_packages
from ci.lock.lockfile import read_lock
from ci.lock.resolve import compile_lock, lock_jobs, read_notes
from ci.paths import REPO_ROOT, BuildPaths
from ci.runtime_view import RuntimeView, ensure_runtime_dir
from tests.config_fixtures import TARGET

pytestmark = pytest.mark.slow  # resolves and fetches from PyPI

PYTHON = target_python(TARGET.runtime.python)
RUNTIME_URLLIB3 = shipped_packages(TARGET.runtime.name)["urllib3"]
HANDLER = """
import requests
import urllib3

SESSION = requests.Session()


def lambda_handler(event, context):
    adapter = SESSION.get_adapter("https://example.com")
    return {"urllib3": urllib3.__version__, "from": urllib3.__file__.rsplit("/urllib3/", 1)[0],
            "adapter": type(adapter).__name__}
"""


def project(root: Path, requirements: str, handler: str = HANDLER, **lock: object) -> tuple[Config, BuildPaths]:
    """A repository whose layer is `requirements`, locked for the target by `ci lock`'s own layer job."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pipeline.toml").write_text((REPO_ROOT / "pipeline.toml").read_text())
    (root / "requirements.in").write_text(requirements)
    (root / "handler").mkdir()
    (root / "handler" / "__init__.py").write_text("")
    (root / "handler" / "app.py").write_text(handler)
    (root / "events").mkdir()
    (root / "events" / "e0.json").write_text(json.dumps({"description": "", "event": {}, "expect": {}}))
    config = load_config(root, overrides={"smoke": {"events": "events"}, "lock": dict(lock)})
    paths = BuildPaths(build=root / "build", cache=REPO_ROOT / "build" / "cache")  # the shared download cache
    paths.model_dir.mkdir(parents=True)
    paths.model.write_bytes(pickle.dumps({"unused": "by this handler"}))  # a pickle the scan accepts
    return config, paths


def lock(config: Config) -> None:
    compile_lock(lock_jobs(config)[0], config.lock.index_url, uv_cache=REPO_ROOT / "build" / "cache" / "uv")


def layer_names(paths: BuildPaths) -> set[str]:
    with zipfile.ZipFile(paths.layer_zip) as zf:
        return set(zf.namelist())


def answers(config: Config, paths: BuildPaths) -> list[dict]:
    """The handler on the events over the built tree, with what Lambda puts behind the layer."""
    site = paths.layer_tree / "python"
    view = RuntimeView(config.target.runtime, ensure_runtime_dir(config, paths))
    traced = verify.trace_handler(
        Runner(PYTHON, extra_paths=view.behind(site)), site, paths.build / "function", config.function.handler,
        config.smoke.events, paths.model, layer_lock=config.lock.layer_lock,
    )  # fmt: skip
    return traced.results


def test_a_layer_with_requests_builds_and_its_urllib3_comes_from_the_runtime(tmp_path: Path) -> None:
    config, paths = project(tmp_path, "requests\n")
    lock(config)
    pins = read_lock(config.lock.layer_lock).pins
    assert {"requests", "idna", "certifi", "charset-normalizer"} <= set(pins) and "urllib3" not in pins
    data = build_layer(config, paths)  # on the old build: "No module named 'urllib3'"
    assert "requests" not in data["pristine"]["failures"], "imports as on Lambda, not 'failing anyway'"
    assert data["verify"]["new_failures"] == {} and data["import_trace"]["workload"] == "events"
    assert "requests/sessions.py" in data["import_trace"]["paths"]
    assert not [path for path in data["import_trace"]["paths"] if path.startswith("urllib3/")]
    assert not [name for name in layer_names(paths) if name.startswith("python/urllib3")]
    [answer] = answers(config, paths)
    assert answer["urllib3"] == RUNTIME_URLLIB3 and answer["adapter"] == "HTTPAdapter"
    assert answer["from"] == str(
        RuntimeView(config.target.runtime, ensure_runtime_dir(config, paths)).packages.resolve()
    )


def test_the_lock_names_each_package_it_leaves_to_the_runtime_with_its_version(tmp_path: Path) -> None:
    config, _paths = project(tmp_path, "requests\n")
    lock(config)
    notes = read_notes(config.lock.layer_lock)
    assert notes[0].startswith(f"Runtime packages ({TARGET.runtime.name} provides them in /var/runtime")
    assert f"urllib3=={RUNTIME_URLLIB3} left out, from the runtime (needed by requests)" in notes
    assert 'bundle_runtime_packages = ["NAME"]' in notes[-1]
    assert not [note for note in notes if note.startswith(("boto3", "awslambdaric"))], "only what the layer needs"


def test_bundling_urllib3_puts_it_in_the_lock_and_the_layer(tmp_path: Path) -> None:
    config, paths = project(tmp_path, "requests\n", bundle_runtime_packages=["urllib3"])
    lock(config)
    pinned = read_lock(config.lock.layer_lock).pins["urllib3"].version
    assert pinned is not None
    notes = read_notes(config.lock.layer_lock)
    assert f"urllib3=={pinned} bundled in the layer ([lock] bundle_runtime_packages; the runtime has " in notes[1]
    build_layer(config, paths)
    assert "python/urllib3/__init__.py" in layer_names(paths)
    [answer] = answers(config, paths)
    assert answer["urllib3"] == pinned and answer["from"] == str((paths.layer_tree / "python").resolve())

    layer = read_lock(config.lock.layer_lock)
    job = lock_jobs(config)[0]
    assert check_runtime_packages(layer, job) == [], "bundled on purpose: no shadowing, and in the layer"


def test_a_module_missing_from_the_locks_is_named_so_not_blamed_on_a_rule(tmp_path: Path) -> None:
    config, paths = project(tmp_path, "requests\n", handler="import yaml\n" + HANDLER)
    lock(config)
    with pytest.raises(CheckFailedError) as info:
        build_layer(config, paths)
    text = str(info.value)
    assert "No module named 'yaml'" in text
    assert f"no locked distribution provides 'yaml' nor does the {TARGET.runtime.name} runtime provide it" in text
    assert "rule '" not in text and "build.keep" not in info.value.fix
    assert info.value.fix.startswith("add the distribution that provides 'yaml' to requirements.in, then run ")
    assert "`python -m ci lock`" in info.value.fix


def test_urllib3_asked_for_directly_is_served_by_the_runtime_without_a_relock_loop(tmp_path: Path) -> None:
    """requirements.in naming urllib3 used to say 'no pin, run python -m ci lock', which never added one."""
    config, _paths = project(tmp_path, "requests\nurllib3\n")
    lock(config)
    job = lock_jobs(config)[0]
    layer = read_lock(config.lock.layer_lock)
    assert "urllib3" not in layer.pins
    env = {"python_version": TARGET.runtime.python, "sys_platform": "linux", "platform_machine": TARGET.machine}
    problems = check_against_in(layer, job, env)
    assert problems == []
    assert f"urllib3=={RUNTIME_URLLIB3} left out, from the runtime (needed by requests, requirements.in)" in read_notes(
        config.lock.layer_lock
    )

    # A version the runtime cannot serve: one line saying so, and the fix that works (never "run ci lock").
    (tmp_path / "requirements.in").write_text("requests\nurllib3>=2\n")
    with pytest.raises(PipelineError) as info:
        lock(config)
    assert f"provides urllib3=={RUNTIME_URLLIB3}" in info.value.problem
    assert info.value.fix.startswith('ship your own in the layer: [lock] bundle_runtime_packages = ["urllib3"]')
    problems = check_against_in(layer, job, env)
    assert [p.fix.split(":")[0] for p in problems] == ["ship your own in the layer"]

    bundled = load_config(tmp_path, overrides={"lock": {"bundle_runtime_packages": ["urllib3"]}})
    lock(bundled)
    assert read_lock(bundled.lock.layer_lock).pins["urllib3"].version.startswith("2.")  # type: ignore[union-attr]


def test_bundle_runtime_packages_is_checked_when_the_configuration_loads() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(overrides={"lock": {"bundle_runtime_packages": ["urlib3"]}})
    assert str(info.value).count("\n") == 0
    assert '[lock] bundle_runtime_packages names "urlib3" (did you mean urllib3?)' in str(info.value)
    assert info.value.fix == 'rename it to "urllib3"'
    with pytest.raises(ConfigError, match="must be a list of strings"):
        load_config(overrides={"lock": {"bundle_runtime_packages": "urllib3"}})
    assert load_config(overrides={"lock": {"bundle_runtime_packages": ["URLlib3"]}}).lock.bundle_runtime_packages == (
        "urllib3",
    )
