"""`python -m ci budget` as a user runs it: on small zips for every outcome, once on the real layer."""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path

import pytest
from budget_fixtures import make_build, zip_sums
from conftest import run_cli

from ci.paths import BuildPaths

LIMIT_MESSAGE = re.compile(r"unzipped size (\d+) bytes exceeds the (\d+)-byte limit by (\d+) bytes")


def budget_cli(paths: BuildPaths, *options: str):  # type: ignore[no-untyped-def]
    return run_cli(
        "-m", "ci", "--build-dir", str(paths.build), "--cache-dir", str(paths.cache), "budget", *options, check=False
    )


def test_prints_the_table_and_writes_both_reports(tmp_path: Path) -> None:
    paths = make_build(tmp_path)
    result = budget_cli(paths)
    assert result.returncode == 0, result.stderr
    used = zip_sums(paths.layer_zip, paths.function_zip)[0]
    assert result.stdout.startswith(f"Lambda size budget: PASS  {used:,} of 262,144,000 bytes")
    assert re.search(r"^numpy\s+1\.26\.4\s+[\d,]+\s+[\d.]+", result.stdout, re.MULTILINE)
    report = json.loads(paths.report("budget").read_text())
    assert (report["passed"], report["used_bytes"]) == (True, used)
    assert (paths.reports / "budget.md").read_text().startswith("## ✅ Lambda size budget: pass")


def test_over_the_limit_fails_in_lambdas_terms_with_what_to_remove(tmp_path: Path) -> None:
    paths = make_build(tmp_path)
    used = zip_sums(paths.layer_zip, paths.function_zip)[0]
    result = budget_cli(paths, "--limit-bytes", str(used - 1))
    assert result.returncode == 1
    match = LIMIT_MESSAGE.search(result.stderr)
    assert match and tuple(map(int, match.groups())) == (used, used - 1, 1), result.stderr
    assert "largest contributors:" in result.stderr
    assert "fix: what could be removed:" in result.stderr
    report = json.loads(paths.report("budget").read_text())
    assert (report["passed"], report["status"], report["over_limit_bytes"]) == (False, "fail", 1)
    assert "## ❌ Lambda size budget: fail" in (paths.reports / "budget.md").read_text()


def test_in_the_warning_band_it_passes_with_a_warning(tmp_path: Path) -> None:
    paths = make_build(tmp_path)
    used = zip_sums(paths.layer_zip, paths.function_zip)[0]
    result = budget_cli(paths, "--limit-bytes", str(used + 1))
    assert result.returncode == 0
    assert "warning: unzipped size" in result.stdout


@pytest.mark.parametrize(
    ("options", "message", "code"),
    [
        (["--limit-bytes", "0"], "--limit-bytes 0 is not a positive integer", 2),  # usage
        (["--baseline-ref", "no-such-ref-8f3a"], "git ref 'no-such-ref-8f3a' does not exist", 1),
        (["--baseline", "missing-baseline.json"], "missing-baseline.json not found", 1),
    ],
)
def test_bad_input_is_named(tmp_path: Path, options: list[str], message: str, code: int) -> None:
    result = budget_cli(make_build(tmp_path), *options)
    assert result.returncode == code
    assert message in result.stderr


def test_a_baseline_of_another_format_is_refused(tmp_path: Path) -> None:
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"format": 0, "check": "budget", "used_bytes": 5, "distributions": []}))
    result = budget_cli(make_build(tmp_path / "b"), "--baseline", str(old))
    assert result.returncode == 1
    assert f"baseline {old} has report format 0" in result.stderr


def test_a_corrupt_layer_is_named(tmp_path: Path) -> None:
    paths = make_build(tmp_path)
    paths.layer_zip.write_bytes(b"PK\x03\x04 not really a zip")
    result = budget_cli(paths)
    assert result.returncode == 1
    assert f"{paths.layer_zip} is not a readable zip file" in result.stderr


@pytest.fixture(scope="module")
def real_build(built_layer: BuildPaths, tmp_path_factory: pytest.TempPathFactory) -> BuildPaths:
    """A private copy of the real build, so a deliberately failing budget.json never lands in the shared one."""
    paths = BuildPaths(build=tmp_path_factory.mktemp("budget") / "build", cache=built_layer.cache)
    paths.reports.mkdir(parents=True)
    for source in (built_layer.layer_zip, built_layer.function_zip, built_layer.report("build")):
        shutil.copy(source, paths.build / source.relative_to(built_layer.build))
    shutil.copytree(built_layer.model_dir, paths.model_dir)  # the build traces the handler on it
    return paths


@pytest.mark.slow
def test_on_the_real_layer(real_build: BuildPaths) -> None:
    """The done-when of the issue: table and reports, a failing limit, a zero delta against HEAD."""
    paths = real_build
    result = budget_cli(paths)
    assert result.returncode in (0, 1), result.stderr
    used = zip_sums(paths.layer_zip, paths.function_zip)[0]
    with zipfile.ZipFile(paths.layer_zip) as layer:
        assert sum(info.file_size for info in layer.infolist()) > 100_000_000  # the real stack, not a stub
    assert f"{used:,} of 262,144,000 bytes" in result.stdout.splitlines()[0]
    for name in ("scipy", "numpy", "pandas", "scikit-learn"):
        assert re.search(rf"^{name}\s", result.stdout, re.MULTILINE), name
    report = json.loads(paths.report("budget").read_text())
    assert report["used_bytes"] == used
    assert {row["name"] for row in report["distributions"]} >= {"numpy", "scipy", "pandas", "scikit-learn", "joblib"}
    assert report["rules"], "the build's pruning figures are in the report"
    assert "```mermaid\npie showData" in (paths.reports / "budget.md").read_text()

    failed = budget_cli(paths, "--limit-bytes", str(used - 1000))
    assert failed.returncode == 1
    assert f"unzipped size {used} bytes exceeds the {used - 1000}-byte limit by 1000 bytes" in failed.stderr

    same = budget_cli(paths, "--baseline-ref", "HEAD")
    assert same.stdout.splitlines()[0].endswith("±0 bytes vs HEAD"), same.stdout[:500] + same.stderr
    baseline = json.loads(paths.report("budget").read_text())["baseline"]
    assert baseline["delta_bytes"] == 0
    assert "identical to this build's lock" in baseline["source"]


@pytest.mark.slow
def test_baseline_ref_really_builds_the_refs_lock_and_a_rebuild_from_the_warm_cache_gives_the_same_sha256(
    real_build: BuildPaths,
) -> None:
    """--rebuild-baseline takes the real path: HEAD's lock built again (`python -m ci build`, same rules, another
    directory, the warm cache), byte for byte the session's build: the build is deterministic."""
    result = budget_cli(real_build, "--baseline-ref", "HEAD", "--rebuild-baseline", "--baseline-label", "main")
    assert "building the baseline layer" not in result.stderr, result.stderr
    assert result.stdout.splitlines()[0].endswith("±0 bytes vs main"), result.stdout[:500] + result.stderr
    baseline = json.loads(real_build.report("budget").read_text())["baseline"]
    assert baseline["delta_bytes"] == 0
    assert "built in" in baseline["source"]
    assert all(row["status"] == "unchanged" for row in baseline["distributions"])
    (built,) = real_build.build.glob("baseline-*/layer.zip")
    assert zip_sums(built)[0] == zip_sums(real_build.layer_zip)[0]
    first = json.loads(real_build.report("build").read_text())
    again = json.loads((built.parent / "reports" / "build.json").read_text())
    assert again["layer"]["sha256"] == first["layer"]["sha256"]
    assert again["function"]["sha256"] == first["function"]["sha256"]
    assert again["timings"]["cache"] == "warm"  # every wheel from the cache, no network
    # The session build's bytes, judged by this code: its proofs are reused (proofs.py), each one named.
    assert again["verify"]["reused"]["key"] and again["import_trace"]["reused"] and again["bytecode"]["proof"]["reused"]
