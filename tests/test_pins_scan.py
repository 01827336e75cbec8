"""The static pickle scan reads joblib files (plain and compressed) exactly as far as needed:
it sees every name the unpickler would import, the versions estimators record, and skips the
raw array bytes joblib writes between opcodes."""

from __future__ import annotations

import pickle
from pathlib import Path

import joblib
import pytest
from joblib import numpy_pickle
from pins_fixtures import bundle, local_bundles  # noqa: F401 - fixture

from ci.pins.scan import ScanError, read_container, scan_stream


def scan_file(path: Path):
    return scan_stream(read_container(path, path.read_bytes())[1])


def names_the_unpickler_imports(path: Path) -> set[str]:
    """Ground truth for a trusted file we made ourselves: load it with joblib, recording find_class."""
    seen: set[str] = set()

    class Recording(numpy_pickle.NumpyUnpickler):
        def find_class(self, module: str, name: str):  # type: ignore[override]
            seen.add(f"{module}.{name}")
            return super().find_class(module, name)

    with path.open("rb") as handle:
        Recording(str(path), handle, ensure_native_byte_order=False).load()
    return seen


def test_scan_sees_every_name_the_unpickler_imports(local_bundles: Path) -> None:  # noqa: F811
    model = bundle(local_bundles, "model").model
    scan = scan_file(model)
    assert {ref.path for ref in scan.references.values() if ref.via is None} == names_the_unpickler_imports(model)
    hgb = "sklearn.ensemble._hist_gradient_boosting"
    assert f"{hgb}.gradient_boosting.HistGradientBoostingClassifier" in scan.references
    assert scan.sklearn_versions.keys() == {"1.3.2"}
    owners = set(scan.sklearn_versions["1.3.2"])
    assert {f"{hgb}.gradient_boosting.HistGradientBoostingClassifier", f"{hgb}.binning._BinMapper"} <= owners
    # feature_names_in_ (fit on a DataFrame) is an object array: a nested pickle, scanned too.
    assert scan.object_arrays >= 1 and scan.arrays > scan.object_arrays and scan.array_bytes_skipped > 0
    assert scan.unresolved == [] and scan.trailing_bytes == 0


def test_compressed_dump_scans_the_same(local_bundles: Path) -> None:  # noqa: F811
    plain = scan_file(bundle(local_bundles, "model").model)
    compressed_file = bundle(local_bundles, "model-z3").model
    compression, stream = read_container(compressed_file, compressed_file.read_bytes())
    assert compression == "zlib"
    compressed = scan_stream(stream)
    assert compressed.references.keys() == plain.references.keys()
    assert compressed.sklearn_versions == plain.sklearn_versions
    assert (compressed.arrays, compressed.array_bytes_skipped) == (plain.arrays, plain.array_bytes_skipped)


@pytest.mark.parametrize("method", ["gzip", "bz2", "lzma", "xz"])
def test_every_joblib_compressor_is_opened(method: str, local_bundles: Path, tmp_path: Path) -> None:  # noqa: F811
    source = bundle(local_bundles, "model").model
    with source.open("rb") as handle:  # our own trusted file: reload it to re-dump with another compressor
        obj = numpy_pickle.NumpyUnpickler(str(source), handle, ensure_native_byte_order=False).load()
    target = tmp_path / f"model.{method}.joblib"
    joblib.dump(obj, target, compress=(method, 3))
    compression, stream = read_container(target, target.read_bytes())
    assert compression == method
    assert scan_stream(stream).references.keys() == scan_file(source).references.keys()


def test_truncated_array_data_is_refused(local_bundles: Path, tmp_path: Path) -> None:  # noqa: F811
    data = bundle(local_bundles, "model").model.read_bytes()
    scan = scan_stream(data)
    assert scan.array_bytes_skipped > 0
    # Cut the file inside the last array's bytes: the scan must notice, not read past the end.
    with pytest.raises(ScanError, match=r"stream ends inside|malformed"):
        scan_stream(data[: len(data) - 20])


def test_bytes_after_stop_are_reported(local_bundles: Path) -> None:  # noqa: F811
    data = bundle(local_bundles, "model").model.read_bytes()
    scan = scan_stream(data + b"\x80\x04hidden")
    assert scan.trailing_bytes == 8
    assert "follow the pickle's STOP" in scan.unresolved[0]


def test_plain_pickle_without_arrays_is_scanned() -> None:
    import pickle
    from collections import OrderedDict

    scan = scan_stream(pickle.dumps({"a": OrderedDict(x=1), "s": slice(1, 2)}, protocol=2))
    assert set(scan.references) == {"collections.OrderedDict", "builtins.slice"}


class LyingDtype:
    """A float64 dtype whose pickled state claims Python objects (flags bit 1)."""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        import numpy as np

        return (np.dtype, ("f8", False, True), (3, "<", None, None, None, -1, -1, 1))


def test_dtype_whose_size_numpy_could_read_differently_is_refused() -> None:
    import numpy as np

    wrapper = numpy_pickle.NumpyArrayWrapper(np.ndarray, (2,), "C", LyingDtype())
    stream = pickle.dumps(wrapper, protocol=4) + b"\x00" * 16
    with pytest.raises(ScanError, match="claims Python objects"):
        scan_stream(stream)


@pytest.mark.parametrize(
    ("stream", "where"),
    [(b"\x80\x020.", "POP at byte 2"), (b"\x80\x02(2.", "DUP at byte 3"), (b"\x80\x02(o.", "OBJ at byte 3")],
)
def test_a_stack_underflow_names_the_opcode_and_its_byte(stream: bytes, where: str) -> None:
    with pytest.raises(ScanError, match=rf"malformed pickle: {where} finds too few items"):
        scan_stream(stream)
