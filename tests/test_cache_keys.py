"""A cached result is reused only while everything that decided it is unchanged: editing what a rule
claims, or how bytecode is compiled, must miss the cache instead of serving the old answer."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

from ci.arch.interpreter import NATIVE, TargetInterpreter, target_python
from ci.config import load_config
from ci.layer import bytecode, verify
from ci.layer.build import BuildState, step_pristine
from ci.layer.wheels import read_layer_lock
from ci.paths import BuildPaths
from ci.site import rules
from tests.config_fixtures import PYTHON


def pristine_cache_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The cache file the build's pristine step reads and writes, for the repository's lock and rules."""
    used: list[Path] = []

    def record(python: str, site: Path, dists: object, planned: object, cache_file: Path, **_: object) -> object:
        used.append(cache_file)
        return verify.Baseline(failures={}, loaded={})

    monkeypatch.setattr(verify, "baseline", record)
    config = load_config()
    state = BuildState(
        config=config,
        paths=BuildPaths(build=tmp_path / "build", cache=tmp_path / "cache"),
        interpreter=TargetInterpreter(NATIVE, sys.executable, "this test's interpreter"),
        lock=read_layer_lock(config.lock.layer_lock),
    )
    step_pristine(state)
    return used[-1]


def test_editing_a_rule_definition_misses_the_pristine_verification_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = pristine_cache_file(tmp_path, monkeypatch)
    assert pristine_cache_file(tmp_path, monkeypatch) == before, "same lock, target and rules: the same entry"
    tests = rules.RULES["tests"]
    monkeypatch.setitem(rules.RULES, "tests", dataclasses.replace(tests, dir_names=tests.dir_names - {"testing"}))
    assert pristine_cache_file(tmp_path, monkeypatch) != before, "same rule names, another definition"


def test_a_rule_filter_is_part_of_its_definition(monkeypatch: pytest.MonkeyPatch) -> None:
    before = rules.fingerprint(["scripts"])
    scripts = rules.RULES["scripts"]
    monkeypatch.setitem(rules.RULES, "scripts", dataclasses.replace(scripts, dir_filter=lambda rel: len(rel.parts) < 3))
    assert rules.fingerprint(["scripts"]) != before


def test_compiling_differently_misses_the_bytecode_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "mod.py").write_text("VALUE = 1\n")
    cache = tmp_path / "cache"
    python = target_python(PYTHON)
    bytecode.compile_files(python, PYTHON, site, ["mod.py"], cache, False, "/opt/python")
    assert len(list(cache.glob("*.pyc"))) == 1
    monkeypatch.setattr(bytecode, "_COMPILE", bytecode._COMPILE.replace("UNCHECKED_HASH", "CHECKED_HASH"))
    bytecode.compile_files(python, PYTHON, site, ["mod.py"], cache, False, "/opt/python")
    assert len(list(cache.glob("*.pyc"))) == 2, "a checked-hash pyc is not the cached unchecked one"
