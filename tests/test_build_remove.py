"""[build] remove: path globs the build removes, reported like the rules, refused when they remove nothing,
and blamed by name when the imports or the handler need what they removed (the tiny offline lock of
test_build_pipeline.py: a wheel installed, verified, traced and zipped by the build's own steps)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from ci.config import Config, load_config
from ci.errors import CheckFailedError, ConfigError
from ci.layer.build import build_layer
from tests.test_build_pipeline import make_project

UNUSED = {
    "demo/unused/__init__.py": "BIG = 1\n" + "# padding\n" * 2_000,
    "demo/unused/table.csv": "a,b\n" * 5_000,
    "demo/unused/LICENSE.txt": "MIT\n",
    "demo/unused/keep.txt": "kept by build.keep\n",
}


def config_with(root: Path, **build: object) -> Config:
    return load_config(root, overrides={"smoke": {"events": "events"}, "build": build})


def layer_names(path: Path) -> set[str]:
    with zipfile.ZipFile(path) as zf:
        return set(zf.namelist())


def test_remove_globs_are_applied_reported_and_the_imports_still_pass(
    ci_log: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    _config, paths = make_project(tmp_path, [{"x": 2}], UNUSED)
    config = config_with(tmp_path, remove=["demo/unused/*"], keep=["demo/unused/keep.txt"])
    data = build_layer(config, paths)
    lines = ci_log.messages
    removed = data["rules"]["remove:demo/unused/*"]
    expected = ["demo/unused/__init__.py", "demo/unused/table.csv"]
    assert removed["paths"] == expected and removed["files"] == 2
    assert removed["bytes"] == sum(len(UNUSED[path].encode()) for path in expected)
    # keep wins over remove (it lists what nothing may remove); licenses are always kept: both reported.
    assert removed["spared"] == ["demo/unused/LICENSE.txt", "demo/unused/keep.txt"]
    assert next(iter(data["rules"])) == "remove:demo/unused/*", "applied first, reported beside the rules"
    names = layer_names(paths.layer_zip)
    assert not {f"python/{path}" for path in expected} & names
    assert {"python/demo/unused/keep.txt", "python/demo/unused/LICENSE.txt", "python/demo/core.py"} <= names
    assert data["verify"]["new_failures"] == {} and data["bytecode"]["proof"]["same_answers"]
    assert any(line.startswith("prune:") and "1 build.remove globs" in line for line in lines)
    assert any("remove:demo/unused/*" in line and "2 kept (build.keep" in line for line in lines)


def test_a_remove_glob_that_matches_nothing_is_refused_naming_it(tmp_path: Path) -> None:
    _config, paths = make_project(tmp_path, [{"x": 2}], UNUSED)
    with pytest.raises(ConfigError) as info:
        build_layer(config_with(tmp_path, remove=["demo/unusd/*"]), paths)
    message = str(info.value)
    assert len(message.splitlines()) == 1
    assert '[build] remove glob "demo/unusd/*" matches no file under python/' in message
    assert '(did you mean "demo/unused/*"?)' in message and "[build] remove" in info.value.fix
    assert not paths.layer_zip.exists()

    with pytest.raises(ConfigError) as info:  # every file it matches is kept: it would remove nothing
        build_layer(config_with(tmp_path, remove=["demo/unused/k*"], keep=["demo/unused/*"]), paths)
    assert 'matches 1 file(s) but removes none (build.keep "demo/unused/*")' in str(info.value)


@pytest.mark.parametrize(
    ("glob", "why"),
    [("/demo/*", "is absolute"), ("../etc/*", "climbs out of python/ with .."), ("demo/../../x", "climbs out")],
)
def test_remove_must_be_relative_to_python(tmp_path: Path, glob: str, why: str) -> None:
    make_project(tmp_path, [{"x": 2}])
    with pytest.raises(ConfigError) as info:
        config_with(tmp_path, remove=[glob])
    message = str(info.value)
    assert f'[build] remove names "{glob}", which {why}' in message and "relative to the layer's python/" in message
    assert 'write remove = ["sklearn/cluster/*"] under [build]' in message
    with pytest.raises(ConfigError, match='remove = "demo/unused/\\*" is not allowed'):
        config_with(tmp_path, remove="demo/unused/*")


def test_a_remove_that_breaks_an_import_fails_the_build_naming_the_glob_and_the_file(tmp_path: Path) -> None:
    _config, paths = make_project(tmp_path, [{"x": 2}], UNUSED)
    with pytest.raises(CheckFailedError) as info:  # demo/__init__.py imports demo.testing
        build_layer(config_with(tmp_path, remove=["demo/testing/*"]), paths)
    text = str(info.value)
    assert "import(s) that work in a pristine install fail after pruning" in text
    assert 'build.remove glob "demo/testing/*" removed/changed demo/testing/__init__.py' in text
    assert 'delete "demo/testing/*" from build.remove' in info.value.fix
    assert not paths.layer_zip.exists()
