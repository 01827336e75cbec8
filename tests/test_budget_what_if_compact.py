"""`budget --what-if` measures the compact profile of the projected layer by running the handler on it.

A small repository with a handler, events and a model, built by the real build from real wheels on a
file:// index (tests/what_if_fixtures.py's helpers). Its basepkg imports optionalpkg when it is installed
(as pandas imports pyarrow): only a trace of the projected layer can tell which of optionalpkg's files the
compact profile keeps. The what-if's figure is compared with a real compact build of the same set.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import re
import zipfile
from pathlib import Path

import pytest

from ci.budget.what_if import parse_request, what_if
from ci.config import Config, load_config
from ci.layer.build import build_layer
from ci.lock.resolve import compile_lock, lock_jobs
from ci.paths import REPO_ROOT, BuildPaths
from ci.reports import write_report
from ci.runtime_view import ensure_runtime_dir
from tests.what_if_fixtures import add_wheel, noise, package, write_index

PYPI = "https://pypi.org/simple"
BASEPKG = "VALUE = 1\ntry:\n    import optionalpkg\n    EXTRA = optionalpkg.SIZE\nexcept ImportError:\n    EXTRA = 0\n"
OPTIONAL = (
    "import os\nwith open(os.path.join(os.path.dirname(__file__), 'table.bin'), 'rb') as f:\n    SIZE = len(f.read())\n"
)
HANDLER = "import basepkg\n\n\ndef lambda_handler(event, context):\n    return {'value': basepkg.VALUE * event['x']}\n"


def make_index(root: Path, config: Config) -> str:
    for pin in config.target.runtime.provided:
        name, version = pin.split("==")
        add_wheel(root, name, version, {f"{name.replace('-', '_')}_stub.py": b"STUB = True\n"})
    add_wheel(root, "basepkg", "1.0", {**package("basepkg", 20_000), "basepkg/__init__.py": BASEPKG.encode()})
    add_wheel(root, "unusedpkg", "1.0", package("unusedpkg", 1_000, {"unusedpkg/data.bin": noise(2_000_000, 2)}))
    optional = {
        **package("optionalpkg", 0),
        "optionalpkg/__init__.py": OPTIONAL.encode(),
        "optionalpkg/table.bin": noise(1_000_000, 4),  # read at import: the trace sees it, compact keeps it
        "optionalpkg/unused.bin": noise(3_000_000, 5),  # never opened: compact drops it
        "optionalpkg/extra/helpers.py": b"HELP = 1\n" + b"#" * 20_000 + b"\n",  # never imported
    }
    add_wheel(root, "optionalpkg", "1.0", optional)
    return write_index(root)


def make_project(
    root: Path, requirements: str, index: Path | None = None, **build: object
) -> tuple[Config, BuildPaths]:
    """A repository at `root`: requirements.in, its layer lock, a handler package, one event and a model."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "requirements.in").write_text(requirements)
    text = (REPO_ROOT / "pipeline.toml").read_text()
    text = re.sub(r'(?m)^runtime = "[^"]*"', 'runtime = "python3.11"', text)
    text = re.sub(r'(?m)^architecture = "[^"]*"', 'architecture = "x86_64"', text)
    (root / "pipeline.toml").write_text(text)
    (root / "handler").mkdir(exist_ok=True)
    (root / "handler" / "__init__.py").write_text("")
    (root / "handler" / "app.py").write_text(HANDLER)
    (root / "events").mkdir(exist_ok=True)
    (root / "events" / "e0.json").write_text(json.dumps({"description": "", "event": {"x": 2}, "expect": {}}))
    index = index or root / "index"
    overrides = {
        "smoke": {"events": "events"},
        "lock": {"index_url": (index / "simple").as_uri(), "allow_insecure_index": True},
        "build": build,
    }
    config = load_config(root, overrides=overrides)
    if not (index / "simple").is_dir():
        make_index(index, config)
    paths = BuildPaths(build=root / "build", cache=root / "cache")
    compile_lock(lock_jobs(config)[0], config.lock.index_url, uv_cache=paths.cache / "uv")
    paths.model_dir.mkdir(parents=True, exist_ok=True)
    paths.model.write_bytes(pickle.dumps({"unused": "by this handler"}))
    return config, paths


def built(config: Config, paths: BuildPaths) -> dict:
    # The runtime's own packages are the real, hash-pinned ones (from PyPI); the local index holds the layer's.
    ensure_runtime_dir(dataclasses.replace(config, lock=dataclasses.replace(config.lock, index_url=PYPI)), paths)
    data = build_layer(config, paths)
    write_report(paths, "build", True, data)
    return data


def test_the_compact_option_is_measured_on_the_projected_layer_and_matches_a_real_build(
    ci_log: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    config, paths = make_project(tmp_path / "repo", "basepkg\nunusedpkg\n")
    now = built(config, paths)
    used = now["layer"]["unzipped_bytes"] + now["function"]["unzipped_bytes"]
    limit = used + 1_500_000  # optionalpkg adds about 4 MB
    request = parse_request(["optionalpkg"], [], tmp_path)
    answer = what_if(config, paths, request, limit_bytes=limit, fresh=True)
    assert answer.passed is False
    options = {option["name"]: option for option in answer.report["options"]}
    compact = options["compact"]
    assert "measured" in compact["action"]
    assert list(compact["paste"]) == ["sourceless = true", "prune_unimported = true"]
    assert compact["fits"] and compact["outcome"].startswith("leaves ") and ": fits, " in compact["outcome"]
    assert any(line.startswith("compact:  the handler traced on the projected layer") for line in ci_log.messages)
    assert "compact" in answer.timings

    # The same set built for real with the compact profile: the what-if said what it would weigh.
    real_config, real_paths = make_project(
        tmp_path / "real", "basepkg\nunusedpkg\noptionalpkg\n", index=tmp_path / "repo" / "index",
        sourceless=True, prune_unimported=True,
    )  # fmt: skip
    real = built(real_config, real_paths)
    real_used = real["layer"]["unzipped_bytes"] + real["function"]["unzipped_bytes"]
    assert real["rules"]["unimported"]["files"] > 0
    assert abs(compact["leaves_bytes"] - real_used) <= 0.01 * real_used, (compact["leaves_bytes"], real_used)
    assert compact["leaves_bytes"] == real_used  # same files, same bytecode: to the byte
    # optionalpkg's table.bin, read when basepkg imports it, stays; what nothing used goes.
    with zipfile.ZipFile(real_paths.layer_zip) as layer:
        names = set(layer.namelist())
    assert "python/optionalpkg/table.bin" in names and "python/optionalpkg/__init__.pyc" in names
    assert not {"python/optionalpkg/unused.bin", "python/unusedpkg/data.bin"} & names
