"""Which names a model pickle may reference: the model's own libraries and a few harmless builtins;
never a way to run a command, evaluate a string or load another file."""

from __future__ import annotations

import pickle

import pytest

from ci.pins.policy import judge
from ci.pins.scan import scan_stream

LOCKED = {"scikit-learn", "numpy", "scipy", "joblib", "pandas"}


@pytest.mark.parametrize(
    "path",
    [
        "sklearn.pipeline.Pipeline",
        "sklearn._loss._loss.__pyx_unpickle_CyHalfBinomialLoss",
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray.scalar",
        "numpy.dtype",
        "scipy.sparse._csr.csr_matrix",
        "joblib.numpy_pickle.NumpyArrayWrapper",
        "pandas.core.indexes.base._new_Index",
        "builtins.slice",
        "builtins.set",
        "builtins.frozenset",
        "builtins.complex",
        "collections.OrderedDict",
        "copyreg._reconstructor",
        "_codecs.encode",
    ],
)
def test_allowed(path: str) -> None:
    module, name = path.rsplit(".", 1)
    assert judge(module, name, LOCKED).allowed


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("os.system", "os is not one of the model's libraries"),
        ("posix.system", "posix is not one of the model's libraries"),
        ("subprocess.Popen", "subprocess is not one of the model's libraries"),
        ("builtins.eval", "builtins is not one of the model's libraries"),
        ("builtins.exec", "builtins is not one of the model's libraries"),
        ("builtins.getattr", "builtins is not one of the model's libraries"),
        ("builtins.__import__", "builtins is not one of the model's libraries"),
        ("numpy.testing._private.utils.runstring", "numpy.testing reads files, evaluates code or runs tests"),
        ("numpy.load", "`load` loads files or evaluates code"),
        ("joblib.externals.cloudpickle.cloudpickle.subimport", "joblib.externals reads files"),
        ("pandas.read_pickle", "`read_pickle` loads files"),
        ("pandas.core.computation.eval.eval", "pandas.core.computation reads files, evaluates code"),
    ],
)
def test_not_allowed(path: str, reason: str) -> None:
    module, name = path.rsplit(".", 1)
    verdict = judge(module, name, LOCKED)
    assert not verdict.allowed and verdict.reason.startswith(reason)


def test_pandas_is_allowed_only_when_the_runtime_lock_ships_it() -> None:
    verdict = judge("pandas.core.indexes.base", "Index", LOCKED - {"pandas"})
    assert not verdict.allowed and verdict.reason == (
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
    assert not judge(ref.module, ref.name, LOCKED).allowed
