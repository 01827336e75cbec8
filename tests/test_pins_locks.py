"""Lock checks: scikit-learn and everything that ends up in the pickle pinned with `==`, to the
same version, in the training lock and the layer lock; the messages name file, line and package."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pins_fixtures import edited_lock, removed_from_lock

from ci.config import load_config, load_policy
from ci.errors import PipelineError
from ci.paths import REPO_ROOT
from ci.pins.check import PinsInputs, check_installed, read_lock, run_pins

TRAINING = REPO_ROOT / "training" / "requirements.txt"
LAYER = REPO_ROOT / "requirements-layer.txt"
TARGET_PYTHON = load_config().target.runtime.python


def locks_result(tmp_path: Path, training: Path = TRAINING, layer: Path = LAYER):
    """Only the locks (no model in tmp_path): the lock check's verdict and findings."""
    inputs = PinsInputs(
        training_lock=training,
        layer_lock=layer,
        model=tmp_path / "absent.joblib",
        manifest=tmp_path / "absent.json",
        target_python=TARGET_PYTHON,
        root=tmp_path,
    )
    return run_pins(inputs).checks[0]


def errors(check) -> list[str]:
    return [f.message for f in check.findings if f.severity == "error"]


def test_committed_locks_agree(tmp_path: Path) -> None:
    check = locks_result(tmp_path)
    assert check.passed, errors(check)
    rows = {row.package: row for row in check.rows}
    assert rows["scikit-learn"].training == rows["scikit-learn"].runtime == "1.3.2"
    assert {"scikit-learn", "numpy", "scipy", "joblib", "pandas"} <= rows.keys()


def test_greater_equal_pin_names_file_line_and_package(tmp_path: Path) -> None:
    layer, line = edited_lock(LAYER, tmp_path / "requirements-layer.txt", "numpy==1.26.4", "numpy>=1.26")
    check = locks_result(tmp_path, layer=layer)
    assert not check.passed
    assert f"requirements-layer.txt:{line}: numpy>=1.26 uses `>=` (>=1.26), not an exact `==` pin" in errors(check)


@pytest.mark.parametrize(("spec", "why"), [("~=1.3.2", "uses `~=`"), ("==1.3.*", "wildcard"), ("", "not pinned")])
def test_loose_scikit_learn_pin_fails(tmp_path: Path, spec: str, why: str) -> None:
    training, line = edited_lock(TRAINING, tmp_path / "requirements.txt", "scikit-learn==1.3.2", f"scikit-learn{spec}")
    check = locks_result(tmp_path, training=training)
    [message] = errors(check)
    assert message.startswith(f"requirements.txt:{line}: scikit-learn{spec} ") and why in message


def test_lock_missing_numpy_fails(tmp_path: Path) -> None:
    training = removed_from_lock(TRAINING, tmp_path / "requirements.txt", "numpy")
    assert read_lock(training).get("numpy") is None
    check = locks_result(tmp_path, training=training)
    assert any(m.startswith("requirements.txt has no entry for numpy") for m in errors(check))
    assert {row.package: row.training for row in check.rows}["numpy"] == "(missing)"


def test_different_versions_fail_naming_both_lines(tmp_path: Path) -> None:
    training, t_line = edited_lock(
        TRAINING, tmp_path / "requirements.txt", "scikit-learn==1.3.2", "scikit-learn==1.5.2"
    )
    check = locks_result(tmp_path, training=training)
    layer_line = read_lock(LAYER).get("scikit-learn").line
    assert (
        f"scikit-learn 1.5.2 in requirements.txt:{t_line} != scikit-learn 1.3.2 in {LAYER}:{layer_line}"
        in errors(check)[0]
    )


def test_missing_lock_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="not found"):
        locks_result(tmp_path, layer=tmp_path / "nope.txt")


def test_installed_environment_matches_training_lock() -> None:
    check = check_installed(read_lock(TRAINING), TARGET_PYTHON)
    assert check.passed, errors(check)
    assert {"scikit-learn", "numpy", "joblib"} <= {row.package for row in check.rows}


def test_installed_environment_mismatch_is_named(tmp_path: Path) -> None:
    training, line = edited_lock(TRAINING, tmp_path / "requirements.txt", "numpy==1.26.4", "numpy==1.26.3")
    check = check_installed(read_lock(training), TARGET_PYTHON)
    [message] = errors(check)
    assert message.startswith("numpy 1.26.4 is installed in ") and message.endswith(
        f"requirements.txt:{line} pins 1.26.3"
    )


@pytest.mark.parametrize("runtime", sorted(load_policy()))
def test_installed_python_must_be_the_targets(runtime: str) -> None:
    """Training pickles with the venv's Python: a venv of another version than the target's fails by name."""
    wanted = load_policy()[runtime].python
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    check = check_installed(read_lock(TRAINING), wanted)
    assert {row.package: row.runtime for row in check.rows}["python"] == here
    if wanted == here:
        assert check.passed, errors(check)
    else:
        [message] = errors(check)
        assert message.startswith(f"this environment runs Python {here} ") and f"runtime's is {wanted}" in message
