"""The budget counts what Lambda counts and says where the bytes are."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from budget_fixtures import (
    BUILD_REPORT,
    LAYER_FILES,
    TRACED,
    config_with,
    make_build,
    write_build_trace,
    write_smoke_trace,
    write_zip,
    zip_sums,
)

from ci.budget.compute import compute_budget, gather_inputs
from ci.budget.render import FAIL, PASS, WARN, Budget
from ci.config import load_config
from ci.errors import ConfigError, PipelineError, toml_value
from ci.paths import REPO_ROOT, BuildPaths
from ci.reports import sha256_file


def budget_for(paths: BuildPaths, **budget_settings: object) -> Budget:
    return compute_budget(gather_inputs(config_with(**budget_settings), paths))


def test_used_bytes_are_the_zip_entries_uncompressed_sizes(tmp_path: Path) -> None:
    paths = make_build(tmp_path)
    budget = budget_for(paths)
    unzipped, zipped, files = zip_sums(paths.layer_zip, paths.function_zip)
    assert budget.used_bytes == unzipped
    assert sum(c.zipped_bytes or 0 for c in budget.components) == zipped
    assert sum(c.files or 0 for c in budget.components) == files
    # Each part on its own, too, and the groupings add up to the same total.
    layer = next(c for c in budget.components if c.kind == "layer")
    assert layer.unzipped_bytes == zip_sums(paths.layer_zip)[0]
    assert sum(g.unzipped_bytes for g in budget.categories) == unzipped
    assert sum(g.unzipped_bytes for g in budget.distributions) == layer.unzipped_bytes
    assert sum(g.zipped_bytes for g in budget.distributions) == layer.zipped_bytes


def test_directory_entries_count_zero_bytes_and_no_files(tmp_path: Path) -> None:
    with_dirs = write_zip(tmp_path / "a.zip", {"python/x.py": 100}, directories=("python/", "python/pkg/", "x/"))
    without = write_zip(tmp_path / "b.zip", {"python/x.py": 100})
    paths = make_build(tmp_path / "build", layer={"python/x.py": 100})
    paths.layer_zip.write_bytes(with_dirs.read_bytes())
    budget = budget_for(paths)
    layer = next(c for c in budget.components if c.kind == "layer")
    assert layer.unzipped_bytes == zip_sums(without)[0] == 100
    assert layer.files == 1


def test_distributions_from_the_build_report_and_the_layer_metadata(tmp_path: Path) -> None:
    budget = budget_for(make_build(tmp_path))
    by_name = {g.name: g for g in budget.distributions}
    sizes = {n: len(v) if isinstance(v, bytes) else v for n, v in LAYER_FILES.items()}
    numpy_files = [n for n in LAYER_FILES if n.startswith(("python/numpy/", "python/numpy.libs/", "python/numpy-"))]
    assert by_name["numpy"].unzipped_bytes == sum(sizes[n] for n in numpy_files)
    assert by_name["numpy"].files == len(numpy_files)
    assert by_name["numpy"].version == "1.26.4"
    assert by_name["six"].unzipped_bytes == 800 + 700 + 100  # six.py, python/__pycache__/six...pyc, dist-info
    assert by_name["(unattributed)"].unzipped_bytes == 50  # python/orphan/ belongs to nobody
    assert [g.unzipped_bytes for g in budget.distributions] == sorted(
        (g.unzipped_bytes for g in budget.distributions), reverse=True
    )


def test_without_a_build_report_the_dist_info_records_attribute_files(tmp_path: Path) -> None:
    budget = budget_for(make_build(tmp_path, report=None))
    by_name = {g.name: g for g in budget.distributions}
    # numpy's RECORD names numpy/ and numpy.libs/; scipy and six are found by their folder and file names.
    assert by_name["numpy"].files == 7
    assert by_name["numpy"].version == "1.26.4"
    assert by_name["scipy"].files == 3
    assert by_name["six"].files == 3
    assert budget.bytecode.mode is None


def test_categories_follow_the_layout(tmp_path: Path) -> None:
    budget = budget_for(make_build(tmp_path))
    by_name = {g.name: g.unzipped_bytes for g in budget.categories}
    assert by_name["vendored shared libraries"] == 120_000
    assert by_name["extension modules"] == 90_000 + 60_000
    assert by_name["bytecode"] == 3_000 + 700
    assert by_name["Python source"] == 4_000 + 2_000 + 800 + 1_200  # the handler's app.py counts too
    metadata = sum(len(v) if isinstance(v, bytes) else v for n, v in LAYER_FILES.items() if ".dist-info/" in n)
    assert by_name["metadata"] == metadata
    assert by_name["data"] == 1_000 + 50


def test_bytecode_cost_and_the_source_sourceless_would_drop(tmp_path: Path) -> None:
    budget = budget_for(make_build(tmp_path))
    assert budget.bytecode.mode == "runtime"
    assert (budget.bytecode.files, budget.bytecode.bytes) == (2, 3_700)
    # numpy/__init__.py and six.py have their .pyc; scipy/special/__init__.py has none.
    assert budget.bytecode.source_with_bytecode_bytes == 4_000 + 800


def test_pruning_rules_and_largest_files(tmp_path: Path) -> None:
    files: dict[str, bytes | int] = {f"python/pkg/f{i:02}.dat": 10_000 + i for i in range(20)}
    budget = budget_for(make_build(tmp_path, layer=files))
    assert [r.name for r in budget.rules] == ["tests", "docs"]
    assert budget.rules[0].bytes == 40_000_000
    assert len(budget.largest_files) == 15
    assert budget.largest_files[0].path == "python/pkg/f19.dat"
    assert [f.unzipped_bytes for f in budget.largest_files] == list(range(10_019, 10_004, -1))


@pytest.mark.parametrize(
    ("limit_offset", "status"),
    [(1, PASS), (0, FAIL), (-1, FAIL)],
    ids=["one-byte-under", "exactly-at", "one-byte-over"],
)
def test_limit_edges(tmp_path: Path, limit_offset: int, status: str) -> None:
    paths = make_build(tmp_path)
    used = zip_sums(paths.layer_zip, paths.function_zip)[0]
    # warn_fraction 1.0 puts the warning at the limit, so only the limit decides here.
    budget = budget_for(paths, limit_bytes=used + limit_offset, warn_fraction=1.0)
    assert budget.status == status
    assert budget.passed == (status == PASS)
    assert budget.headroom_bytes == limit_offset


def test_warning_band(tmp_path: Path) -> None:
    paths = make_build(tmp_path)
    used = zip_sums(paths.layer_zip, paths.function_zip)[0]
    limit = used * 2  # used is then 50% of the limit
    assert budget_for(paths, limit_bytes=limit, warn_fraction=0.5).status == WARN
    assert budget_for(paths, limit_bytes=limit, warn_fraction=0.5).passed
    assert budget_for(paths, limit_bytes=limit + 2, warn_fraction=0.5).status == PASS
    assert budget_for(paths, limit_bytes=used + 1, warn_fraction=0.9).status == WARN


@pytest.mark.parametrize("bad", [0, -5, "250MB", 1.5, True, 262_144_001])
def test_a_limit_that_is_not_a_positive_integer_within_lambdas_is_refused(tmp_path: Path, bad: object) -> None:
    paths = make_build(tmp_path)
    with pytest.raises(
        ConfigError, match=r"\[budget\] limit_bytes = " + re.escape(toml_value(bad)) + " is not allowed"
    ):
        budget_for(paths, limit_bytes=bad)


@pytest.mark.parametrize("bad", [0, 1.2, "90%"])
def test_a_warning_fraction_outside_zero_to_one_is_refused(tmp_path: Path, bad: object) -> None:
    with pytest.raises(ConfigError, match="warn_fraction"):
        budget_for(make_build(tmp_path), warn_fraction=bad)


def test_missing_and_corrupt_zips_name_the_file(tmp_path: Path) -> None:
    paths = make_build(tmp_path)
    paths.function_zip.unlink()
    with pytest.raises(PipelineError, match=r"function\.zip not found") as missing:
        budget_for(paths)
    assert "python -m ci build" in missing.value.fix
    paths = make_build(tmp_path)
    paths.layer_zip.write_bytes(paths.layer_zip.read_bytes()[:1000])  # truncated: no central directory
    with pytest.raises(PipelineError, match=r"layer\.zip is not a readable zip file"):
        budget_for(paths)


def test_extra_layers_count_against_the_same_limit(tmp_path: Path, repo_root: Path) -> None:
    paths = make_build(tmp_path)
    extra = write_zip(tmp_path / "otel.zip", {"python/otel/__init__.py": 7_000, "extensions/collector": 30_000})
    arn = "arn:aws:lambda:us-east-1:123456789012:layer:insights:14"
    extras = {"extra_layer_zips": [str(extra)], "extra_layer_arns": [{"arn": arn, "unzipped_bytes": 5_000_000}]}
    # A configured path stays in the repository or beside the configuration file: the zip is beside this copy.
    config = load_config(file=Path(shutil.copy(REPO_ROOT / "pipeline.toml", tmp_path)), overrides={"budget": extras})
    budget = compute_budget(gather_inputs(config, paths))
    own = zip_sums(paths.layer_zip, paths.function_zip)[0]
    assert budget.used_bytes == own + 37_000 + 5_000_000
    kinds = {c.name: (c.kind, c.unzipped_bytes, c.zipped_bytes) for c in budget.components}
    assert kinds["otel.zip"][:2] == ("extra layer", 37_000)
    assert kinds["insights:14"] == ("extra layer", 5_000_000, None)
    assert any("insights:14" in s.action for s in budget.suggestions)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"arn": "not-an-arn", "unzipped_bytes": 5}, r'arn = "not-an-arn" is not allowed'),
        ({"arn": "arn:aws:lambda:us-east-1:1:layer:x:1", "unzipped_bytes": -1}, "unzipped_bytes = -1 is not allowed"),
        ({"arn": "arn:aws:lambda:us-east-1:1:layer:x:1"}, "unzipped_bytes is missing"),
        ("arn:aws:lambda:us-east-1:1:layer:x:1", r"extra_layer_arns\[0\] is .*, not a table"),
    ],
)
def test_bad_extra_layer_entries_are_refused(tmp_path: Path, entry: object, message: str) -> None:
    paths = make_build(tmp_path)
    with pytest.raises(ConfigError, match=message):
        compute_budget(gather_inputs(config_with(extra_layer_arns=[entry]), paths))
    with pytest.raises(PipelineError, match=r"nope\.zip not found"):
        compute_budget(gather_inputs(config_with(extra_layer_zips=["nope.zip"]), paths))


def test_never_imported_distributions_from_the_import_trace(tmp_path: Path) -> None:
    paths = make_build(tmp_path)
    trace = {"files": ["numpy/__init__.py", "python/numpy.libs/libopenblas64_p-r0.so", "six.py"], "distributions": {}}
    smoke = {"format": 1, "check": "smoke", "artifacts": {"layer.zip": sha256_file(paths.layer_zip)}}
    paths.report("smoke").write_text(json.dumps({**smoke, "import_trace": trace}))
    imports = budget_for(paths).imports
    assert imports is not None and imports.same_layer
    assert [use.name for use in imports.never_imported] == ["scipy", "(unattributed)"]
    assert imports.never_imported_bytes == 60_000 + 2_000 + 400 + 50
    numpy = next(use for use in imports.distributions if use.name == "numpy")
    # The .pyc of an imported module counts as imported with it.
    assert (numpy.imported_files, numpy.imported_bytes) == (3, 4_000 + 3_000 + 120_000)
    assert [g.name for g in imports.unimported_directories] == ["numpy/core", "scipy/special"]

    # The compact profile would drop what was never imported plus the .py that ship with their .pyc.
    assert budget_for(paths).compact_saving_bytes == (90_000 + 1_000 + 60_000 + 2_000 + 50) + (4_000 + 800)
    assert budget_for(paths).suggestions[0].action.startswith("turn on the compact profile")

    paths.report("smoke").write_text(json.dumps({**smoke, "artifacts": {"layer.zip": "0" * 64}, "import_trace": trace}))
    stale = budget_for(paths).imports
    assert stale is not None and not stale.same_layer


def test_without_an_import_trace_nothing_is_claimed_about_imports(tmp_path: Path) -> None:
    budget = budget_for(make_build(tmp_path))
    assert budget.imports is None
    assert budget.compact_saving_bytes == 4_000 + 800  # only the source that ships with its bytecode
    assert all("never imported" not in s.action for s in budget.suggestions)


def test_build_report_distribution_names_win_over_folder_names(tmp_path: Path) -> None:
    report = {**BUILD_REPORT, "distributions": {"scikit-learn": {"version": "1.3.2"}}, "top_level": {}}
    layer: dict[str, bytes | int] = {
        "python/sklearn/__init__.py": 10,
        "python/scikit_learn.libs/libgomp.so.1": 20,
        "python/scikit_learn-1.3.2.dist-info/RECORD": b"sklearn/__init__.py,,\n",
    }
    budget = budget_for(make_build(tmp_path, layer=layer, report=report))
    assert [(g.name, g.files, g.version) for g in budget.distributions] == [("scikit-learn", 3, "1.3.2")]


def test_a_layer_built_compact_is_not_told_to_turn_on_the_compact_profile(tmp_path: Path) -> None:
    """`build --compact` leaves pipeline.toml alone: the build report, not the configuration, says what was built."""
    paths = make_build(tmp_path)
    assert budget_for(paths).compact_saving_bytes is not None
    report = json.loads(paths.report("build").read_text())
    report["bytecode"] = {**report.get("bytecode", {}), "sourceless": True}
    report["rules"] = {**report.get("rules", {}), "unimported": {"files": 3, "bytes": 300, "paths": []}}
    paths.report("build").write_text(json.dumps(report))
    budget = budget_for(paths)
    assert budget.compact_saving_bytes is None
    assert all("compact profile" not in s.action for s in budget.suggestions)


def test_the_builds_trace_stands_in_when_no_smoke_report_exists(tmp_path: Path) -> None:
    """On pull requests the budget runs beside the smoke job: the build's own trace is all there is."""
    paths = make_build(tmp_path)
    write_build_trace(paths, TRACED)
    assert not paths.report("smoke").exists()
    budget = budget_for(paths)
    imports = budget.imports
    assert imports is not None and imports.same_layer
    assert (imports.source, imports.report) == ("build", str(paths.report("build")))
    assert [use.name for use in imports.never_imported] == ["scipy", "(unattributed)"]
    assert imports.never_imported_bytes == 60_000 + 2_000 + 400 + 50
    numpy = next(use for use in imports.distributions if use.name == "numpy")
    assert (numpy.imported_files, numpy.imported_bytes) == (3, 4_000 + 3_000 + 120_000)
    assert [g.name for g in imports.unimported_directories] == ["numpy/core", "scipy/special"]
    assert budget.compact_saving_bytes == (90_000 + 1_000 + 60_000 + 2_000 + 50) + (4_000 + 800)
    never = next(s.action for s in budget.suggestions if "never imported" in s.action)
    assert "in the build's trace of the handler on the committed events" in never
    assert "smoke invocation" not in never
    folder = next(s.action for s in budget.suggestions if s.action.startswith("nothing in python/numpy/core"))
    assert "imported in the build's trace of the handler on the committed events" in folder


def test_a_smoke_trace_of_this_layer_wins_over_the_builds(tmp_path: Path) -> None:
    paths = make_build(tmp_path)
    write_build_trace(paths, TRACED)
    write_smoke_trace(paths, [*TRACED, "scipy/special/__init__.py"])
    imports = budget_for(paths).imports
    assert imports is not None and imports.same_layer
    assert (imports.source, imports.report) == ("smoke", str(paths.report("smoke")))
    assert [use.name for use in imports.never_imported] == ["(unattributed)"]  # scipy was imported this time


def test_a_stale_smoke_trace_gives_way_to_the_builds_and_stays_flagged_without_one(tmp_path: Path) -> None:
    paths = make_build(tmp_path)
    write_smoke_trace(paths, [*TRACED, "scipy/special/__init__.py"], layer_sha256="0" * 64)
    write_build_trace(paths, TRACED)
    imports = budget_for(paths).imports
    assert imports is not None and (imports.source, imports.same_layer) == ("build", True)
    assert [use.name for use in imports.never_imported] == ["scipy", "(unattributed)"]

    write_build_trace(paths, TRACED, layer_sha256="1" * 64)  # the build's trace is of another layer too
    stale = budget_for(paths).imports
    assert stale is not None and (stale.source, stale.same_layer) == ("smoke", False)


@pytest.mark.parametrize(
    ("workload", "layer_sha256"),
    [("events", "0" * 64), ("import-only", None)],
    ids=["another-layer", "import-only"],
)
def test_a_builds_trace_that_cannot_stand_for_this_layer_is_ignored(
    tmp_path: Path, workload: str, layer_sha256: str | None
) -> None:
    """Another layer's trace says nothing about this one; an import-only trace (no model) misses most of the
    runtime, so everything the model needs would look removable."""
    paths = make_build(tmp_path)
    write_build_trace(paths, TRACED, workload=workload, layer_sha256=layer_sha256)
    budget = budget_for(paths)
    assert budget.imports is None
    assert all("never imported" not in s.action for s in budget.suggestions)
    assert budget.compact_saving_bytes == 4_000 + 800


def test_a_build_report_without_traced_paths_is_not_a_trace(tmp_path: Path) -> None:
    """build.json from before the paths were recorded: a count of files is no list of them."""
    paths = make_build(tmp_path)
    write_build_trace(paths, TRACED)
    report = json.loads(paths.report("build").read_text())
    del report["import_trace"]["paths"]
    paths.report("build").write_text(json.dumps(report))
    assert budget_for(paths).imports is None
