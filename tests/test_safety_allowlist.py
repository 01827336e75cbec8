"""The model can only be data: a pickle that calls anything outside handler/model_globals.txt is refused
by the pipeline's static scan and by the handler's loader, and its side effect never happens.

The gadgets (tests/pickle_gadgets.py) are side-effecting callables of the model's own libraries, the
ones a deny-list by package let through (numpy ndarray.tofile wrote its file in smoke, build and the
post-deploy check). Each is shown to work when nothing guards, then refused twice.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ci.paths import REPO_ROOT, BuildPaths
from handler.errors import ModelLoadError
from tests.pickle_gadgets import Build, Gadget, Global, array, encode, gadgets, stream

LAYER_LOCK = REPO_ROOT / "requirements-layer.txt"


def _gadget(tmp_path: Path, name: str) -> Gadget:
    return next(gadget for gadget in gadgets(tmp_path) if gadget.name == name)


def _names() -> list[str]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return [gadget.name for gadget in gadgets(Path(tmp))]


GADGETS = _names()


def test_there_are_enough_gadgets_from_each_library() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        refused = [gadget.refused for gadget in gadgets(Path(tmp))]
    assert len(refused) >= 20
    for library in ("numpy", "scipy", "pandas", "sklearn", "joblib"):
        assert any(path.startswith(library + ".") for path in refused), library


READERS = (
    "numpy.fromfile",
    "numpy.loadtxt",
    "pandas.read_csv",
    "scipy.io.loadmat",
    "importlib",
    "sklearn.utils.discovery",
)


def test_every_gadget_works_when_nothing_guards(tmp_path: Path) -> None:
    """The fixtures are real: plain joblib.load of each one has its effect (in one fresh process)."""
    found = gadgets(tmp_path)
    paths = []
    for number, gadget in enumerate(found):
        if not gadget.name.startswith(READERS):  # a read leaves no trace; the refusals are what matter
            paths.append(tmp_path / f"{number}.joblib")
            paths[-1].write_bytes(gadget.payload)
    script = (
        "import joblib, sys\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n        joblib.load(path)\n    except Exception:\n        pass\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, *map(str, paths)], cwd=tmp_path, check=True, timeout=300, capture_output=True
    )
    inert = [gadget.name for gadget in found if not gadget.name.startswith(READERS) and not gadget.happened()]
    assert inert == [], f"these gadgets had no effect, so they prove nothing: {inert}"


@pytest.mark.parametrize("name", GADGETS)
def test_the_static_scan_refuses_the_gadget(tmp_path: Path, name: str) -> None:
    from ci.pins.check import UnsafeModelError, refusals, require_safe_model
    from ci.pins.scan import scan_stream

    gadget = _gadget(tmp_path, name)
    model = tmp_path / "model.joblib"
    model.write_bytes(gadget.payload)
    with pytest.raises(UnsafeModelError) as caught:
        require_safe_model(model, LAYER_LOCK)
    assert "never load" in caught.value.fix
    # the error names the first refusal; `ci pins` lists them all, the gadget's own among them
    found = [finding.message for finding in refusals(scan_stream(gadget.payload), None)]
    assert any(message.startswith(f"references {gadget.refused} (") for message in found), found
    assert not gadget.happened()


@pytest.mark.parametrize("name", GADGETS)
def test_the_handler_loader_refuses_the_gadget_before_calling_it(tmp_path: Path, name: str) -> None:
    from handler.model_store import unpickle

    gadget = _gadget(tmp_path, name)
    with pytest.raises(ModelLoadError) as caught:
        unpickle(gadget.payload, "model.joblib")
    assert f"references {gadget.refused}, which is not in handler/model_globals.txt" in str(caught.value)
    assert not gadget.happened()


def test_build_on_an_allowed_class_is_refused_and_the_class_is_unchanged() -> None:
    """BUILD applied to a class object would overwrite its attributes (here joblib's array reader)."""
    from joblib.numpy_pickle import NumpyArrayWrapper

    from ci.pins.scan import scan_stream
    from handler.model_store import unpickle

    state = (None, {"read_array": Global("numpy", "dtype")})
    payload = stream(Build(Global("joblib.numpy_pickle", "NumpyArrayWrapper"), state))
    original = NumpyArrayWrapper.read_array
    with pytest.raises(ModelLoadError, match="BUILD on the class NumpyArrayWrapper"):
        unpickle(payload, "model.joblib")
    assert NumpyArrayWrapper.read_array is original
    assert any(
        item.startswith("BUILD on the class joblib.numpy_pickle.NumpyArrayWrapper")
        for item in scan_stream(payload).unresolved
    )


def test_a_wrapper_inside_an_object_arrays_stream_is_refused_by_both() -> None:
    """joblib reads a nested stream as plain pickle: bytes the scan would skip as 'array data' are opcodes."""
    from ci.pins.scan import scan_stream
    from handler.model_store import unpickle
    from tests.pickle_gadgets import PROTO4, object_array_stream

    inner = object_array_stream(b"")[len(PROTO4) : -1]  # a wrapper's opcodes, without its payload
    nested = PROTO4 + inner + b"."
    payload = object_array_stream(nested)
    assert any("NumpyArrayWrapper inside an object array" in item for item in scan_stream(payload).unresolved)
    with pytest.raises(ModelLoadError, match=r"joblib\.numpy_pickle\.NumpyArrayWrapper, which is not in"):
        unpickle(payload, "model.joblib")


def test_a_wrapper_with_extra_state_is_refused() -> None:
    """The loader reads arrays with joblib's class code only; a wrapper may not bring attributes of its own."""
    from handler.model_store import unpickle
    from tests.pickle_gadgets import PROTO4, dtype

    state = {
        "subclass": Global("numpy", "ndarray"),
        "shape": (1,),
        "order": "C",
        "dtype": dtype("u1"),
        "allow_mmap": False,
    }
    state["safe_get_numpy_array_alignment_bytes"] = Global("numpy", "dtype")
    from tests.pickle_gadgets import Call

    wrapper = Build(Call(Global("joblib.numpy_pickle", "NumpyArrayWrapper"), (), opcode="NEWOBJ"), state)
    with pytest.raises(ModelLoadError, match="NumpyArrayWrapper with unexpected fields"):
        unpickle(PROTO4 + encode(wrapper) + b"\x00" + b".", "model.joblib")


def test_an_array_made_only_of_allowed_globals_loads() -> None:
    """The fixtures' own array encoding is accepted: refusals above come from the gadget, not the array."""
    from handler.safe_unpickle import load_bundle

    bundle = load_bundle(stream(array(b"\x01\x02")))
    assert bundle["sklearn_model"].tolist() == [1, 2]


# The legitimate model ---------------------------------------------------------------------------


def test_the_trained_model_loads_and_predicts_identically(trained_model: BuildPaths) -> None:
    import joblib
    import numpy as np
    import pandas as pd

    from handler.model_store import unpickle

    data = trained_model.model.read_bytes()
    restricted = unpickle(data, "model.joblib")
    plain = joblib.load(io.BytesIO(data))
    assert restricted["feature_names"] == plain["feature_names"]
    assert restricted["metadata"] == plain["metadata"]
    rng = np.random.default_rng(11)
    rows = pd.DataFrame(rng.random((200, len(plain["feature_names"]))) * 10, columns=plain["feature_names"])
    expected = plain["sklearn_model"].predict_proba(rows)
    assert np.array_equal(restricted["sklearn_model"].predict_proba(rows), expected)


def test_the_allow_list_is_exactly_what_the_trained_model_references(trained_model: BuildPaths) -> None:
    """In sync: no entry is stale, none is missing, each resolves, and the declared estimators are listed."""
    import importlib

    from ci.pins.scan import read_container, scan_stream
    from handler.model_globals import allowed_globals
    from handler.safe_unpickle import referenced_globals
    from training.model import ESTIMATOR_CLASSES

    allowed = allowed_globals()
    data = trained_model.model.read_bytes()
    scanned = {
        (ref.module, ref.name) for ref in scan_stream(read_container(trained_model.model, data)[1]).references.values()
    }
    assert scanned == referenced_globals(data) == allowed
    for cls in ESTIMATOR_CLASSES:
        assert (cls.__module__, cls.__qualname__) in allowed
    for module, name in allowed:
        value = importlib.import_module(module)
        for part in name.split("."):
            value = getattr(value, part)


def test_the_allow_list_ships_in_function_zip() -> None:
    from ci.layer.sources import handler_files

    assert REPO_ROOT / "handler" / "model_globals.txt" in handler_files(REPO_ROOT / "handler")


def test_a_malformed_allow_list_line_is_named(tmp_path: Path) -> None:
    from handler.model_globals import AllowListError, parse_allowed_globals

    with pytest.raises(AllowListError, match=r"^x.txt:3: 'numpy.dtype' is not 'module qualname'"):
        parse_allowed_globals("# comment\nnumpy ndarray\nnumpy.dtype\n", "x.txt")


# Training ---------------------------------------------------------------------------------------


def _fitted(estimator: object) -> object:
    import numpy as np

    x, y = np.array([[0.0], [1.0], [2.0], [3.0]] * 5), np.array([0, 0, 1, 1] * 5)
    return estimator.fit(x, y)  # type: ignore[attr-defined]


def test_training_refuses_an_undeclared_estimator() -> None:
    from sklearn.linear_model import LogisticRegression

    from training.allowlist import require_loadable
    from training.bundle import dump_bytes
    from training.errors import TrainingError

    model = _fitted(LogisticRegression())
    with pytest.raises(TrainingError) as caught:
        require_loadable(dump_bytes({"sklearn_model": model}), model)
    assert (
        "sklearn.linear_model._logistic.LogisticRegression, which training/model.py does not declare"
        in caught.value.problem
    )
    assert caught.value.fix == "add LogisticRegression to ESTIMATOR_CLASSES in training/model.py and train again"


def test_training_names_the_exact_lines_the_allow_list_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.linear_model import LogisticRegression

    from training import allowlist
    from training.bundle import dump_bytes
    from training.errors import TrainingError

    monkeypatch.setattr(allowlist, "ESTIMATOR_CLASSES", (LogisticRegression,))
    model = _fitted(LogisticRegression())
    with pytest.raises(TrainingError) as caught:
        allowlist.require_loadable(dump_bytes({"sklearn_model": model}), model)
    assert caught.value.problem.startswith(
        "the bundle references 1 global(s) that handler/model_globals.txt does not list, so the handler would "
        "refuse to load it: sklearn.linear_model._logistic.LogisticRegression"
    )
    assert caught.value.fix.endswith(
        "add these lines to handler/model_globals.txt and train again:"
        "\n      sklearn.linear_model._logistic LogisticRegression"
    )


def test_the_training_cli_writes_nothing_when_the_bundle_is_not_allow_listed(tmp_path: Path) -> None:
    """Through the real CLI: a list without the estimator makes training fail with the line to add."""
    listed = (REPO_ROOT / "handler" / "model_globals.txt").read_text()
    pruned = tmp_path / "model_globals.txt"
    pruned.write_text(listed.replace("sklearn._loss.link Interval\n", ""))
    script = (
        "import sys; from pathlib import Path; import training.allowlist as a; "
        f"a.ALLOWED_GLOBALS_FILE = Path({str(pruned)!r}); from training.cli import main; "
        f"sys.exit(main(['--out-dir', {str(tmp_path / 'out')!r}]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, env={**os.environ}
    )
    assert result.returncode == 1
    assert "error: the bundle references 1 global(s)" in result.stderr
    assert "\n      sklearn._loss.link Interval" in result.stderr
    assert not (tmp_path / "out" / "model.joblib").exists()
