"""Which names a model pickle may reference: exactly the pairs of handler/model_globals.txt, whatever
package a name lives in; never a method reached through an allowed class."""

from __future__ import annotations

import pickle

import pytest

from ci.pins.check import ALLOW_LIST, judge
from ci.pins.scan import scan_stream

LOCKED = {"scikit-learn", "numpy", "scipy", "joblib", "pandas"}


@pytest.mark.parametrize(
    "path",
    [
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting HistGradientBoostingClassifier",
        "sklearn._loss._loss __pyx_unpickle_CyHalfBinomialLoss",
        "numpy.core.multiarray _reconstruct",
        "numpy.core.multiarray scalar",
        "numpy dtype",
        "numpy ndarray",
        "joblib.numpy_pickle NumpyArrayWrapper",
    ],
)
def test_allowed(path: str) -> None:
    module, name = path.split()
    assert judge(module, name, LOCKED) is None


@pytest.mark.parametrize(
    "path",
    [
        "os system",
        "posix system",
        "subprocess Popen",
        "builtins eval",
        "builtins getattr",
        # under the model's own libraries, which a deny-list by package let through
        "sklearn.pipeline Pipeline",
        "scipy.sparse._csr csr_matrix",
        "pandas.core.indexes.base _new_Index",
        "numpy ndarray.tofile",
        "numpy save",
        "numpy.core.multiarray _reconstruct.__self__",
        "joblib.numpy_pickle NumpyArrayWrapper.read_mmap",
        "copyreg _reconstructor",
        "builtins set",
    ],
)
def test_not_allowed(path: str) -> None:
    module, name = path.split()
    assert (
        judge(module, name, LOCKED)
        == f"'{module} {name}' is not in {ALLOW_LIST}, the exact globals a model may reference"
    )


def test_a_listed_name_is_allowed_only_when_the_runtime_lock_ships_it() -> None:
    allowed = frozenset({("pandas.core.indexes.base", "Index")})
    assert judge("pandas.core.indexes.base", "Index", LOCKED, allowed) is None
    assert judge("pandas.core.indexes.base", "Index", LOCKED - {"pandas"}, allowed) == (
        "pandas is not in the runtime lock, so the runtime cannot import pandas.core.indexes.base"
    )


class UfuncImport:
    """numpy's ufunc unpickler imports any module.name given as strings: here posix.system."""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        import numpy.core

        return (numpy.core._ufunc_reconstruct, ("posix", "system"))


def test_names_imported_through_numpy_ufunc_reconstruct_are_judged_too() -> None:
    scan = scan_stream(pickle.dumps(UfuncImport(), protocol=4))
    ref = scan.references["posix.system"]
    assert ref.via == "numpy.core._ufunc_reconstruct" and ref.called
    assert judge(ref.module, ref.name, LOCKED) is not None
