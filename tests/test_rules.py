"""Each pruning rule on a small tree: exactly what it removes, and what it must never remove."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci.site import rules
from tests.config_fixtures import PYC_TAG

TREE = [
    "pkg/__init__.py",
    "pkg/core.py",
    "pkg/tests/__init__.py",
    "pkg/tests/test_core.py",
    "pkg/tests/LICENSE",
    "pkg/sub/test/test_sub.py",
    "pkg/conftest.py",
    "pkg/testing/__init__.py",
    "pkg/testing/helpers.py",
    "pkg/testing/tests/test_helpers.py",
    "pkg/docs/index.rst",
    "pkg/README.md",
    "pkg/benchmarks/bench_core.py",
    "pkg/examples/plot.py",
    f"pkg/__pycache__/core.{PYC_TAG}.pyc",
    "pkg/stale.pyc",
    "pkg/_ext.c",
    "pkg/_ext.pyx",
    "pkg/_ext.pxd",
    "pkg/include/pkg/api.h",
    "pkg/lib/libpkgmath.a",
    "pkg/core.pyi",
    "pkg/py.typed",
    "pkg/bin/helper.sh",
    "bin/pkg-cli",
    "pkg-1.0.dist-info/METADATA",
    "pkg-1.0.dist-info/RECORD",
    "pkg-1.0.dist-info/INSTALLER",
    "pkg-1.0.dist-info/REQUESTED",
    "pkg-1.0.dist-info/WHEEL",
    "pkg-1.0.dist-info/direct_url.json",
    "pkg-1.0.dist-info/entry_points.txt",
    "pkg-1.0.dist-info/top_level.txt",
    "pkg-1.0.dist-info/LICENSE",
    "pkg-1.0.dist-info/licenses/COPYING.txt",
]

EXPECTED = {
    "tests": {
        "pkg/tests/__init__.py",
        "pkg/tests/test_core.py",
        "pkg/sub/test/test_sub.py",
        "pkg/conftest.py",
        "pkg/testing/__init__.py",
        "pkg/testing/helpers.py",
        "pkg/testing/tests/test_helpers.py",
    },
    "docs": {"pkg/docs/index.rst", "pkg/README.md"},
    "benchmarks": {"pkg/benchmarks/bench_core.py"},
    "examples": {"pkg/examples/plot.py"},
    "caches": {f"pkg/__pycache__/core.{PYC_TAG}.pyc", "pkg/stale.pyc"},
    "sources": {"pkg/_ext.c", "pkg/_ext.pyx", "pkg/_ext.pxd", "pkg/include/pkg/api.h", "pkg/lib/libpkgmath.a"},
    "stubs": {"pkg/core.pyi"},
    "scripts": {"bin/pkg-cli"},
    "bookkeeping": {
        "pkg-1.0.dist-info/RECORD",
        "pkg-1.0.dist-info/INSTALLER",
        "pkg-1.0.dist-info/REQUESTED",
        "pkg-1.0.dist-info/WHEEL",
        "pkg-1.0.dist-info/direct_url.json",
    },
}


@pytest.fixture()
def site(tmp_path: Path) -> Path:
    root = tmp_path / "python"
    for rel in TREE:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# {rel}\n" * 10)
    return root


def files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_rule_removes_exactly_its_files(site: Path, name: str) -> None:
    before = files(site)
    results = rules.apply_rules(site, [name])
    removed = before - files(site)
    assert removed == EXPECTED[name]
    assert results[name].files == len(EXPECTED[name])
    assert results[name].bytes == sum(len(f"# {rel}\n" * 10) for rel in EXPECTED[name])
    assert set(results[name].paths) == EXPECTED[name]


def test_all_rules_keep_metadata_licenses_and_runtime_files(site: Path) -> None:
    rules.apply_rules(site, list(rules.RULES))
    assert files(site) == {
        "pkg/__init__.py",
        "pkg/core.py",
        "pkg/py.typed",
        "pkg/bin/helper.sh",  # only a top-level bin/ holds console scripts
        "pkg/tests/LICENSE",  # license files survive even inside removed directories
        "pkg-1.0.dist-info/METADATA",
        "pkg-1.0.dist-info/entry_points.txt",
        "pkg-1.0.dist-info/top_level.txt",
        "pkg-1.0.dist-info/LICENSE",
        "pkg-1.0.dist-info/licenses/COPYING.txt",
    }
    assert not (site / "pkg/docs").exists(), "emptied directories are removed too"


def test_a_directory_the_verification_imports_is_spared_but_its_own_tests_go(site: Path) -> None:
    # like numpy/testing: other packages import it at import time, so the verification keeps it
    keep = frozenset({"pkg/testing/__init__.py"})
    results = rules.apply_rules(site, ["tests"], keep)
    left = files(site)
    assert {"pkg/testing/__init__.py", "pkg/testing/helpers.py"} <= left
    assert "pkg/testing/tests/test_helpers.py" not in left
    assert "pkg/tests/test_core.py" not in left
    assert results["tests"].spared == ["pkg/testing/__init__.py", "pkg/testing/helpers.py"]


def test_plan_touches_nothing(site: Path) -> None:
    before = files(site)
    planned = rules.plan(site, list(rules.RULES))
    assert files(site) == before
    assert set(planned) == set().union(*EXPECTED.values())
    assert planned["pkg/core.pyi"] == "stubs"


def test_a_directory_left_holding_only_emptied_directories_is_removed_too(tmp_path: Path) -> None:
    site = tmp_path / "python"
    (site / "pkg" / "tests" / "data").mkdir(parents=True)
    (site / "pkg" / "tests" / "data" / "case.csv").write_text("x\n")
    (site / "pkg" / "__init__.py").write_text("")
    results = rules.apply_rules(site, ["tests"])
    assert results["tests"].paths == ["pkg/tests/data/case.csv"]
    assert sorted(p.relative_to(site).as_posix() for p in site.rglob("*")) == ["pkg", "pkg/__init__.py"]
