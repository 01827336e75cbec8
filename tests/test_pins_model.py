"""Model checks on real artifacts: bundles trained here (the layer lock's versions) pass; bundles
trained with scikit-learn 1.5 + numpy 2 in a throwaway venv, a manifest of another file, a pickle
that would run os.system, or pandas objects without a pandas pin fail, each with a precise message.
Nothing in these tests unpickles an artifact it did not make itself; the malicious one is never loaded.
"""

from __future__ import annotations

import copyreg
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from config_fixtures import PYTHON
from conftest import run_cli
from pins_fixtures import (  # noqa: F401 - fixtures
    FOREIGN_VERSIONS,
    Bundle,
    bundle,
    foreign_bundles,
    local_bundles,
    removed_from_lock,
    write_manifest,
)

from ci.paths import REPO_ROOT
from ci.pins.check import PinsInputs, PinsResult, run_pins

TRAINING = REPO_ROOT / "training" / "requirements.txt"
LAYER = REPO_ROOT / "requirements-layer.txt"


class RunsACommand:
    """What a tampered artifact can hold: unpickling it calls os.system(command)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (self.command,))


def check(model: Bundle, training: Path = TRAINING, layer: Path = LAYER) -> PinsResult:
    return run_pins(
        PinsInputs(
            training_lock=training,
            layer_lock=layer,
            model=model.model,
            manifest=model.manifest,
            target_python=PYTHON,
            root=REPO_ROOT,
        )
    )


def errors(result: PinsResult, name: str) -> list[str]:
    [found] = [c for c in result.checks if c.name == name]
    return [f.message for f in found.findings if f.severity == "error"]


# scikit-learn, pandas and joblib are imported where used: every test worker imports this module to collect it
# (~2 s), and only the one that runs these tests needs them.
def small_model() -> Any:
    """The estimator training makes (all of its globals allow-listed), fitted on four rows."""
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier

    x, y = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1])
    return HistGradientBoostingClassifier(max_iter=2, min_samples_leaf=1).fit(x, y)


def dump(artifact: dict[str, Any], path: Path) -> None:
    import joblib

    joblib.dump(artifact, path)


def pandas_index(values: list[str]) -> Any:
    import pandas as pd

    return pd.Index(values)


def test_bundle_trained_with_the_layer_lock_passes(local_bundles: Path) -> None:  # noqa: F811
    result = check(bundle(local_bundles, "model"))
    assert result.passed, result.errors()
    model_check = result.checks[1]
    assert not [f for f in model_check.findings if "skipped" in f.message]  # class paths were checked
    rows = {row.package: row for row in model_check.rows}
    assert rows["scikit-learn"].model == "1.3.2" and rows["scikit-learn"].status == "ok"
    assert rows["numpy"].model == "1.x (numpy.core)"


def test_model_from_sklearn_1_5_and_numpy_2_names_each_mismatch(foreign_bundles: Path) -> None:  # noqa: F811
    model = bundle(foreign_bundles, "model")
    result = check(model)
    found = errors(result, "model")
    sklearn_line = next(
        i for i, line in enumerate(LAYER.read_text().splitlines(), 1) if line.startswith("scikit-learn")
    )
    manifest = str(model.manifest.relative_to(REPO_ROOT))
    assert any(
        m.startswith("_sklearn_version 1.5.2 in the model (sklearn.")
        and "!= scikit-learn 1.3.2 in requirements-layer.txt" in m
        for m in found
    ), found
    assert any(
        m.startswith(
            "references numpy._core.multiarray: pickled under numpy 2.x; numpy 1.26.4 in requirements-layer.txt"
        )
        for m in found
    ), found
    assert any(
        m.startswith(f"scikit-learn 1.5.2 in {manifest} != scikit-learn 1.3.2 in requirements-layer.txt:{sklearn_line}")
        for m in found
    ), found
    for dist in ("numpy", "scipy", "joblib", "pandas"):
        assert any(m.startswith(f"{dist} {FOREIGN_VERSIONS[dist]} in {manifest} != {dist} ") for m in found), dist
    assert not result.passed
    assert errors(result, "locks") == []  # the locks themselves are fine: the model is not


def test_compressed_foreign_dump_gives_the_same_findings(foreign_bundles: Path) -> None:  # noqa: F811
    plain = check(bundle(foreign_bundles, "model"))
    compressed = check(bundle(foreign_bundles, "model-z3"))
    assert compressed.model_info["compression"] == "zlib"
    assert compressed.scan is not None and plain.scan is not None
    assert compressed.scan.references.keys() == plain.scan.references.keys()
    assert compressed.scan.sklearn_versions == plain.scan.sklearn_versions
    assert [m.replace("model-z3", "model") for m in errors(compressed, "model")] == errors(plain, "model")


def test_class_that_the_runtime_sklearn_lacks_is_named_as_version_drift(foreign_bundles: Path) -> None:  # noqa: F811
    """Issue 25 item 5: a normal pickle of another scikit-learn is drift to fix, not an attack to report."""
    result = check(bundle(foreign_bundles, "threshold"))
    path = "sklearn.model_selection._classification_threshold.FixedThresholdClassifier"
    found = errors(result, "model")
    assert (
        f"references {path} (called when the pickle is loaded), not in handler/model_globals.txt: the model was "
        "pickled by scikit-learn 1.5.2 and the runtime has scikit-learn 1.3.2 (version drift)"
    ) in found, found
    model_check = next(c for c in result.checks if c.name == "model")
    drift = next(f for f in model_check.findings if path in f.message)
    assert "never deploy" not in drift.fix and "retrain" in drift.fix


def test_manifest_of_another_artifact_fails(local_bundles: Path, tmp_path: Path) -> None:  # noqa: F811
    model = tmp_path / "model.joblib"
    shutil.copy(bundle(local_bundles, "model").model, model)
    other = bundle(local_bundles, "model-z3")
    manifest = tmp_path / "model.json"
    manifest.write_text(other.manifest.read_text())  # the manifest that belongs to the compressed dump
    result = check(Bundle(model, manifest))
    recorded = json.loads(manifest.read_text())["sha256"]
    [message] = errors(result, "model")
    assert message.startswith(f"{manifest} records sha256 {recorded} but {model} has sha256 ")
    assert message.endswith("the manifest does not describe this artifact")


def test_pickle_that_would_run_os_system_is_not_allowed(local_bundles: Path, tmp_path: Path) -> None:  # noqa: F811
    marker = tmp_path / "ran"
    model = tmp_path / "model.joblib"
    dump(
        {"sklearn_model": small_model(), "feature_names": ["x"], "metadata": {"note": RunsACommand(f"touch {marker}")}},
        model,
    )
    versions = bundle(local_bundles, "model").manifest_data()["versions"]
    result = check(write_manifest(model, tmp_path / "model.json", versions))
    found = errors(result, "model")
    assert any(
        m.startswith("references posix.system (called when the pickle is loaded): not allowed") for m in found
    ), found
    assert not marker.exists()  # the check never executed the pickle


def test_pandas_objects_need_pandas_in_both_locks_and_are_refused_anyway(local_bundles: Path, tmp_path: Path) -> None:  # noqa: F811
    model = tmp_path / "model.joblib"
    dump({"sklearn_model": small_model(), "feature_names": ["x"], "metadata": {"index": pandas_index(["x"])}}, model)
    versions = bundle(local_bundles, "model").manifest_data()["versions"]
    bundle_ = write_manifest(model, tmp_path / "model.json", versions)
    training = removed_from_lock(TRAINING, tmp_path / "training.txt", "pandas")
    layer = removed_from_lock(LAYER, tmp_path / "layer.txt", "pandas")
    result = check(bundle_, training=training, layer=layer)
    lock_errors = errors(result, "locks")
    assert any(m.startswith(f"{training} has no entry for pandas (the model references pandas.") for m in lock_errors)
    # a pandas Index is not a global the allow-list has: refused with pandas in both locks too
    for found in (errors(result, "model"), errors(check(bundle_), "model")):
        assert any(m.startswith("references pandas.") and "is not in handler/model_globals.txt" in m for m in found), (
            found
        )


def test_cli_passes_on_a_freshly_trained_model(trained_model, tmp_path: Path) -> None:
    result = run_cli(
        "-m", "ci", "--build-dir", str(tmp_path), "pins", "--installed",
        "--model", str(trained_model.model), "--manifest", str(trained_model.model_manifest),
    )  # fmt: skip
    assert "Training lock vs layer lock: passed" in result.stdout
    assert "Model artifact vs layer lock (static scan, never unpickled): passed" in result.stdout
    # A model other than <build-dir>/model/model.joblib is judged into its own report (pins.json untouched).
    assert not (tmp_path / "reports" / "pins.json").exists()
    report = json.loads((tmp_path / "reports" / "pins-adhoc.json").read_text())
    assert report["passed"] is True and report["check"] == "pins-adhoc"
    assert report["checks"]["installed"]["passed"] is True
    assert report["scan"]["sklearn_versions"].keys() == {"1.3.2"}


def test_cli_fails_on_a_foreign_model_with_the_first_problem(foreign_bundles: Path, tmp_path: Path) -> None:  # noqa: F811
    model = bundle(foreign_bundles, "model")
    result = run_cli(
        "-m", "ci", "--build-dir", str(tmp_path), "pins",
        "--model", str(model.model), "--manifest", str(model.manifest),
        check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "pin problem(s)" in result.stderr and "  fix: " in result.stderr
    assert "_sklearn_version 1.5.2 in the model" in result.stdout
    report = json.loads((tmp_path / "reports" / "pins-adhoc.json").read_text())
    assert report["passed"] is False and report["checks"]["model"]["passed"] is False


@pytest.mark.parametrize("name", ["model", "model-z3"])
def test_foreign_fixture_records_what_made_it(foreign_bundles: Path, name: str) -> None:  # noqa: F811
    versions = bundle(foreign_bundles, name).manifest_data()["versions"]
    assert {dist: versions[dist] for dist in FOREIGN_VERSIONS} == FOREIGN_VERSIONS


def test_report_never_vouches_for_another_file_than_the_build_model(local_bundles: Path, tmp_path: Path) -> None:  # noqa: F811
    build_model = tmp_path / "model" / "model.joblib"
    build_model.parent.mkdir()
    shutil.copy(bundle(local_bundles, "model-z3").model, build_model)
    scanned = bundle(local_bundles, "model")
    result = run_cli(
        "-m", "ci", "--build-dir", str(tmp_path), "pins",
        "--model", str(scanned.model), "--manifest", str(scanned.manifest),
        check=False,
    )  # fmt: skip
    # Judged on its own merits, into its own report: pins.json (what deploy trusts) is never written for it.
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (tmp_path / "reports" / "pins.json").exists()
    adhoc = json.loads((tmp_path / "reports" / "pins-adhoc.json").read_text())
    assert adhoc["passed"] is True


def test_a_report_for_the_build_model_still_refuses_a_manifest_of_another_file(
    local_bundles: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The vouching guard holds where it matters: build/model/model.joblib scanned against another manifest."""
    build_model = tmp_path / "model" / "model.joblib"
    build_model.parent.mkdir()
    shutil.copy(bundle(local_bundles, "model-z3").model, build_model)
    shutil.copy(bundle(local_bundles, "model").manifest, tmp_path / "model" / "model.json")
    result = run_cli("-m", "ci", "--build-dir", str(tmp_path), "pins", check=False)
    assert result.returncode == 1
    assert json.loads((tmp_path / "reports" / "pins.json").read_text())["passed"] is False


class WrapperInDisguise:
    """Pickles as copyreg._reconstructor(NumpyArrayWrapper, object, None) + BUILD: joblib's loader would then
    read 'array bytes' that the scan could not size from the class path alone."""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        from joblib.numpy_pickle import NumpyArrayWrapper

        return (copyreg._reconstructor, (NumpyArrayWrapper, object, None), {"shape": (1,)})


def test_array_wrapper_built_indirectly_is_refused(local_bundles: Path, tmp_path: Path) -> None:  # noqa: F811
    model = tmp_path / "model.joblib"
    dump({"sklearn_model": small_model(), "feature_names": ["x"], "metadata": {"w": WrapperInDisguise()}}, model)
    versions = bundle(local_bundles, "model").manifest_data()["versions"]
    found = errors(check(write_manifest(model, tmp_path / "model.json", versions)), "model")
    assert any(m.startswith("cannot be read statically: NumpyArrayWrapper constructed indirectly") for m in found), (
        found
    )


def test_class_path_check_is_skipped_and_said_so_when_the_probe_has_other_versions(
    local_bundles: Path,  # noqa: F811
    foreign_bundles: Path,  # noqa: F811
) -> None:
    model = bundle(local_bundles, "model")
    other_python = str(foreign_bundles.parent / "venv" / "bin" / "python")  # scikit-learn 1.5.2, numpy 2.1.3
    result = run_pins(
        PinsInputs(TRAINING, LAYER, model.model, model.manifest, PYTHON, REPO_ROOT, probe_python=other_python)
    )
    notes = [f.message for f in result.checks[1].findings if f.severity == "note"]
    assert any(
        m.startswith(f"class-path check skipped for scikit-learn: {other_python} has scikit-learn 1.5.2, ")
        and m.endswith("requirements-layer.txt pins 1.3.2")
        for m in notes
    ), notes
    assert result.passed  # a skipped sub-check is reported, not failed


def test_the_foreign_environment_comes_from_a_hashed_lock_of_exactly_those_versions() -> None:
    """The fixture's environment is installed with --require-hashes; its lock pins what the tests expect."""
    from ci.lock.check import check_format
    from ci.lock.lockfile import read_lock
    from tests.pins_fixtures import FOREIGN_LOCK

    lock = read_lock(FOREIGN_LOCK)
    assert check_format(lock) == []
    assert {name: lock.pins[name].version for name in FOREIGN_VERSIONS} == FOREIGN_VERSIONS


def test_a_normal_pickle_of_another_sklearn_is_reported_as_drift_not_as_an_attack(foreign_bundles: Path) -> None:  # noqa: F811
    """Issue 25 item 5: the same estimator pickled by scikit-learn 1.5.2 / numpy 2 names other globals."""
    model_check = next(c for c in check(bundle(foreign_bundles, "model")).checks if c.name == "model")
    refused = [f for f in model_check.findings if f.message.startswith("references ") and "model_globals" in f.message]
    assert refused, model_check.findings
    for finding in refused:
        assert finding.message.endswith(
            "the model was pickled by scikit-learn 1.5.2 and the runtime has scikit-learn 1.3.2 (version drift)"
        ), finding.message
        assert "never deploy" not in finding.fix
