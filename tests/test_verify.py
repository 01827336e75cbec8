"""Verification in the isolated interpreter: pristine failures are data, new failures name file, error and cause."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import pytest

from ci import cache_seal
from ci.arch.interpreter import target_python
from ci.layer import verify
from ci.layer.verify import extension_modules
from ci.paths import REPO_ROOT, BuildPaths
from ci.runtime_view import RuntimeView, ensure_runtime_dir
from tests.config_fixtures import CONFIG, TARGET

PYTHON = target_python(TARGET.runtime.python)


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture()
def site(tmp_path: Path) -> Path:
    root = tmp_path / "python"
    write(
        root,
        {
            "pkg/__init__.py": "from pkg import helpers\n",
            "pkg/helpers.py": "import pkg.testing\nVALUE = 1\n",
            "pkg/testing/__init__.py": "",
            "pkg/tests/test_it.py": "",
            "pkg/broken.py": "raise ImportError('broken even in a pristine install')\n",
            "other.py": "import pkg\n",
            "pkg-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n",
        },
    )
    return root


def test_baseline_records_pristine_failures_and_the_files_imports_load(site: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "baseline.json"
    items = verify.items_for(site, ["pkg"])
    assert ("module", "pkg") in items and ("module", "other") in items and ("metadata", "pkg") in items
    base = verify.baseline(verify.Runner(PYTHON), site, ["pkg"], [], cache)
    assert base.failures == {}  # pkg.broken is not a top-level package nor an extension module
    keep = base.keep
    assert {"pkg/__init__.py", "pkg/helpers.py", "pkg/testing/__init__.py", "other.py"} <= keep
    assert "pkg/tests/test_it.py" not in keep
    assert json.loads(cache.read_text())["loaded"], "cached for the next build"
    excused = {"format": verify.VERIFIER_VERSION, "failures": {"x": "y"}, "loaded": {}}
    cache.write_text(json.dumps(cache_seal.sealed_json("pristine", cache.name, excused)))
    assert verify.baseline(verify.Runner(PYTHON), site, ["pkg"], [], cache).failures == {"x": "y"}, (
        "served from the cache"
    )


@pytest.mark.parametrize("seal", ["none", "another machine's"])
def test_a_pristine_verdict_not_sealed_here_is_made_again(seal: str, site: Path, tmp_path: Path) -> None:
    """A forged verdict excusing every import (written into a cache restored from elsewhere) excuses nothing."""
    cache = tmp_path / "cache" / "baseline.json"
    cache.parent.mkdir()
    forged = {"format": verify.VERIFIER_VERSION, "failures": {"pkg": "excused"}, "loaded": {}}
    if seal != "none":
        forged["seal"] = "0" * 64
    cache.write_text(json.dumps(forged))
    base = verify.baseline(verify.Runner(PYTHON), site, ["pkg"], [], cache)
    assert base.failures == {} and base.loaded, "verified, not read"


def test_a_failure_seen_pristine_is_not_a_pruning_failure(site: Path, tmp_path: Path) -> None:
    write(site, {"failing.py": "raise RuntimeError('needs a GPU')\n"})
    base = verify.baseline(verify.Runner(PYTHON), site, ["pkg"], [], tmp_path / "b.json")
    assert base.failures == {"failing": "RuntimeError: needs a GPU"}
    result = verify.verify_tree(verify.Runner(PYTHON), site, ["pkg"], base)
    assert not result["new_failures"] and result["failures"] == {"failing": "RuntimeError: needs a GPU"}


def test_a_new_failure_names_the_file_the_error_and_the_rule(site: Path, tmp_path: Path) -> None:
    base = verify.baseline(verify.Runner(PYTHON), site, ["pkg"], [], tmp_path / "b.json")
    (site / "pkg/testing/__init__.py").unlink()
    (site / "pkg/testing").rmdir()
    result = verify.verify_tree(verify.Runner(PYTHON), site, ["pkg", "absent-dist"], base)
    assert result["new_failures"]
    assert set(result["new_failures"]) == {"pkg", "other", "absent-dist"}
    assert "No module named 'pkg.testing'" in result["new_failures"]["pkg"]
    assert "PackageNotFoundError" in result["new_failures"]["absent-dist"]
    changes = {"pkg/testing/__init__.py": "tests", "pkg/tests/test_it.py": "tests"}
    error = verify.explain(result["new_failures"], verify.Context(site, changes, None, "requirements.in"))
    text = str(error)
    assert "pkg (pkg/__init__.py): ModuleNotFoundError: No module named 'pkg.testing'" in text
    assert "rule 'tests' removed/changed pkg/testing/__init__.py" in text
    assert "build.keep" in error.fix


def test_a_failure_no_rule_caused_says_which_case_it_is(site: Path, tmp_path: Path) -> None:
    """Not in the locks, from the runtime's own copy, or the installed package itself: each with its own fix."""
    base = verify.baseline(verify.Runner(PYTHON), site, ["pkg"], [], tmp_path / "b.json")
    write(site, {"uses_yaml.py": "import yaml\n", "uses_boto.py": "from botocore import no_such_name\n"})
    write(site, {"pkg/helpers.py": "import pkg.testing\nimport pkg.gone\nVALUE = 1\n"})
    view = RuntimeView(TARGET.runtime, ensure_runtime_dir(CONFIG, BuildPaths(tmp_path, REPO_ROOT / "build" / "cache")))
    extra = view.behind(site)
    result = verify.verify_tree(verify.Runner(PYTHON, extra_paths=extra), site, ["pkg"], base)
    assert set(result["new_failures"]) == {"uses_yaml", "uses_boto", "pkg", "other"}
    context = verify.Context(site, {"pkg/tests/test_it.py": "tests"}, view, "requirements.in")
    causes = {
        name: verify.cause_of(name, error, f"{name}.py", context) for name, error in result["new_failures"].items()
    }
    assert causes["uses_yaml"].kind == verify.UNLOCKED and "'yaml'" in causes["uses_yaml"].fix
    assert causes["uses_boto"].kind == verify.RUNTIME
    assert 'bundle_runtime_packages = ["botocore"]' in causes["uses_boto"].fix
    assert causes["pkg"].kind == verify.INSTALLED, "pkg.gone was never there: no rule removed it"
    error = verify.explain(result["new_failures"], context)
    assert "rule '" not in str(error) and "build.keep" not in error.fix
    assert "fail in the layer as Lambda would see it" in error.problem


def test_a_crashing_import_is_isolated_and_the_others_still_run(site: Path) -> None:
    write(site, {"crash.py": "import os\nos.abort()\n", "zzz.py": "X = 1\n"})
    items = [("module", "crash"), ("module", "zzz"), ("module", "pkg")]
    outcomes = verify.run_checks(verify.Runner(PYTHON), site, items, jobs=1)
    assert "interpreter died" in (outcomes[("module", "crash")].error or "")
    assert outcomes[("module", "zzz")].error is None and outcomes[("module", "pkg")].error is None


def test_extension_modules_are_listed_by_their_tag(tmp_path: Path) -> None:
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    write(
        tmp_path, {f"pkg/_speed{suffix}": "", "pkg/__init__.py": "", "pkg.libs/libx.so": "", "pkg/sub/_m.abi3.so": ""}
    )
    assert extension_modules(tmp_path) == {"pkg._speed": f"pkg/_speed{suffix}", "pkg.sub._m": "pkg/sub/_m.abi3.so"}
