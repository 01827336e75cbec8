"""Hand-assembled pickles that call side-effecting functions of the model's own libraries.

Each is written opcode by opcode (GLOBAL, STACK_GLOBAL, REDUCE, INST, OBJ, NEWOBJ, NEWOBJ_EX, BUILD)
the way an attacker would, not by pickling a live object: the point is what a loader does with bytes.
Arrays are made the way numpy pickles them (numpy.core.multiarray._reconstruct + BUILD), i.e. only
with globals the allow-list itself holds, so the gadget's own global is the one thing to refuse.
"""

from __future__ import annotations

import pickle
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROTO4 = pickle.PROTO + b"\x04"


@dataclass
class Global:
    module: str
    name: str
    opcode: str = "STACK_GLOBAL"  # or GLOBAL


@dataclass
class Call:
    """`func(*args, **kwargs)` through one of pickle's calling opcodes."""

    func: Global | Call
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    opcode: str = "REDUCE"  # INST, OBJ, NEWOBJ, NEWOBJ_EX


@dataclass
class Build:
    """BUILD: set `target`'s state (what pickle does after REDUCE/NEWOBJ; also applicable to a class)."""

    target: Any
    state: Any


def encode(value: Any) -> bytes:
    if value is None:
        return pickle.NONE
    if value is True or value is False:
        return pickle.NEWTRUE if value else pickle.NEWFALSE
    if isinstance(value, int):
        return pickle.BININT + struct.pack("<i", value)
    if isinstance(value, float):
        return pickle.BINFLOAT + struct.pack(">d", value)
    if isinstance(value, str):
        raw = value.encode()
        return pickle.BINUNICODE + struct.pack("<I", len(raw)) + raw
    if isinstance(value, bytes):
        return pickle.BINBYTES + struct.pack("<I", len(value)) + value
    if isinstance(value, tuple):
        return pickle.MARK + b"".join(encode(item) for item in value) + pickle.TUPLE
    if isinstance(value, list):
        return pickle.EMPTY_LIST + pickle.MARK + b"".join(encode(item) for item in value) + pickle.APPENDS
    if isinstance(value, dict):
        items = b"".join(encode(k) + encode(v) for k, v in value.items())
        return pickle.EMPTY_DICT + pickle.MARK + items + pickle.SETITEMS
    if isinstance(value, Global):
        if value.opcode == "GLOBAL":
            return pickle.GLOBAL + f"{value.module}\n{value.name}\n".encode()
        return encode(value.module) + encode(value.name) + pickle.STACK_GLOBAL
    if isinstance(value, Build):
        return encode(value.target) + encode(value.state) + pickle.BUILD
    if isinstance(value, Call):
        return _call(value)
    raise TypeError(f"cannot encode {value!r}")


def _call(call: Call) -> bytes:
    args = b"".join(encode(item) for item in call.args)
    if call.opcode == "REDUCE":
        return encode(call.func) + encode(call.args) + pickle.REDUCE
    assert isinstance(call.func, Global)
    if call.opcode == "INST":
        return pickle.MARK + args + pickle.INST + f"{call.func.module}\n{call.func.name}\n".encode()
    if call.opcode == "OBJ":
        return pickle.MARK + encode(call.func) + args + pickle.OBJ
    if call.opcode == "NEWOBJ":
        return encode(call.func) + encode(call.args) + pickle.NEWOBJ
    if call.opcode == "NEWOBJ_EX":
        return encode(call.func) + encode(call.args) + encode(call.kwargs) + pickle.NEWOBJ_EX
    raise ValueError(call.opcode)


def stream(value: Any) -> bytes:
    """A protocol-4 pickle of a model bundle whose sklearn_model is `value`."""
    return PROTO4 + encode({"sklearn_model": value, "feature_names": ["delta_days"]}) + pickle.STOP


# What numpy writes for np.arange(4, dtype=np.uint8): only allow-listed globals.
def dtype(code: str, flags: int = 0) -> Build:
    return Build(Call(Global("numpy", "dtype"), (code, False, True)), (3, "|", None, None, None, -1, -1, flags))


def array(data: bytes = b"\x00\x01\x02\x03") -> Build:
    made = Call(Global("numpy.core.multiarray", "_reconstruct"), (Global("numpy", "ndarray"), (0,), b"b"))
    return Build(made, (1, (len(data),), dtype("u1"), False, data))


def object_array_stream(nested: bytes) -> bytes:
    """joblib's layout for an object array: a NumpyArrayWrapper, then a whole pickle stream of its own."""
    state = {
        "subclass": Global("numpy", "ndarray"),
        "shape": (1,),
        "order": "C",
        "dtype": dtype("O8", flags=63),
        "allow_mmap": False,
        "numpy_array_alignment_bytes": 16,
    }
    wrapper = Build(Call(Global("joblib.numpy_pickle", "NumpyArrayWrapper"), (), opcode="NEWOBJ"), state)
    return PROTO4 + encode(wrapper) + nested + pickle.STOP


def touch_pickle(marker: Path) -> bytes:
    """A plain pickle that creates `marker` when loaded: the payload of the file-loading gadgets."""
    return PROTO4 + encode(Call(Global("posix", "system"), (f"touch {marker}",))) + pickle.STOP


@dataclass(frozen=True)
class Gadget:
    """One attack: the bytes, the global that must be named in the refusal, and whether its effect happened."""

    name: str
    payload: bytes
    refused: str  # module.qualname of the first global that is not allow-listed
    happened: Callable[[], bool]


def gadgets(tmp: Path) -> list[Gadget]:
    """Side-effecting callables of numpy, scipy, pandas, scikit-learn and joblib, reached every way."""
    out = tmp / "written"
    marker = tmp / "ran"
    evil = tmp / "evil.pkl"
    evil.write_bytes(touch_pickle(marker))
    victim = tmp / "victim"
    victim.mkdir(exist_ok=True)
    (victim / "keep").write_text("data")
    text = tmp / "table.txt"
    text.write_text("1 2\n3 4\n")
    written = out.exists
    ran = marker.exists

    def frame() -> Call:
        return Call(Global("pandas", "DataFrame"), ([[1, 2]],))

    def g(name: str, value: Any, refused: str, happened: Callable[[], bool] = lambda: False) -> Gadget:
        return Gadget(name, stream(value), refused, happened)

    s_out = str(out)
    return [
        # file writers
        g(
            "numpy.save",
            Call(Global("numpy", "save"), (s_out, array())),
            "numpy.save",
            lambda: Path(s_out + ".npy").exists(),
        ),
        g(
            "ndarray.tofile (an allowed class's method)",
            Call(Global("numpy", "ndarray.tofile"), (array(), s_out)),
            "numpy.ndarray.tofile",
            written,
        ),
        g(
            "ndarray.tofile by GLOBAL",
            Call(Global("numpy", "ndarray.tofile", "GLOBAL"), (array(), s_out)),
            "numpy.ndarray.tofile",
            written,
        ),
        g("ndarray.dump", Call(Global("numpy", "ndarray.dump"), (array(), s_out)), "numpy.ndarray.dump", written),
        g(
            "numpy.savetxt by INST",
            Call(Global("numpy", "savetxt"), (s_out, array()), opcode="INST"),
            "numpy.savetxt",
            written,
        ),
        g(
            "numpy.savez by OBJ",
            Call(Global("numpy", "savez"), (s_out, array()), opcode="OBJ"),
            "numpy.savez",
            lambda: Path(s_out + ".npz").exists(),
        ),
        g(
            "numpy.memmap by NEWOBJ_EX",
            Call(Global("numpy", "memmap"), (s_out,), {"mode": "w+", "shape": (4,)}, "NEWOBJ_EX"),
            "numpy.memmap",
            written,
        ),
        g(
            "numpy.lib.format.open_memmap",
            Call(Global("numpy.lib.format", "open_memmap"), (s_out, "w+", dtype("u1"), (4,))),
            "numpy.lib.format.open_memmap",
            written,
        ),
        g(
            "pandas DataFrame.to_csv",
            Call(Global("pandas", "DataFrame.to_csv"), (frame(), s_out)),
            "pandas.DataFrame.to_csv",
            written,
        ),
        g(
            "pandas DataFrame.to_pickle",
            Call(Global("pandas.core.frame", "DataFrame.to_pickle"), (frame(), s_out)),
            "pandas.core.frame.DataFrame.to_pickle",
            written,
        ),
        g(
            "pandas DataFrame.to_json",
            Call(Global("pandas", "DataFrame.to_json"), (frame(), s_out)),
            "pandas.DataFrame.to_json",
            written,
        ),
        g("joblib.dump", Call(Global("joblib", "dump"), ([1], s_out)), "joblib.dump", written),
        g("joblib.disk.mkdirp", Call(Global("joblib.disk", "mkdirp"), (s_out,)), "joblib.disk.mkdirp", written),
        g(
            "joblib.disk.delete_folder",
            Call(Global("joblib.disk", "delete_folder"), (str(victim),)),
            "joblib.disk.delete_folder",
            lambda: not victim.exists(),
        ),
        g(
            "scipy.io.savemat",
            Call(Global("scipy.io", "savemat"), (s_out, {"a": array()})),
            "scipy.io.savemat",
            lambda: Path(s_out + ".mat").exists() or written(),
        ),
        g(
            "scipy.sparse.save_npz",
            Call(Global("scipy.sparse", "save_npz"), (s_out, Call(Global("scipy.sparse", "csr_matrix"), ([[1, 0]],)))),
            "scipy.sparse.save_npz",
            lambda: Path(s_out + ".npz").exists(),
        ),
        g(
            "sklearn.datasets.dump_svmlight_file",
            Call(Global("sklearn.datasets", "dump_svmlight_file"), ([[1.0]], [1], s_out)),
            "sklearn.datasets.dump_svmlight_file",
            written,
        ),
        # loaders whose file is itself a pickle that runs a command
        g("pandas.read_pickle", Call(Global("pandas", "read_pickle"), (str(evil),)), "pandas.read_pickle", ran),
        g("numpy.load(allow_pickle=True)", Call(Global("numpy", "load"), (str(evil), None, True)), "numpy.load", ran),
        g("joblib.load", Call(Global("joblib", "load"), (str(evil),)), "joblib.load", ran),
        # plain readers: what they read leaks into the model object
        g("numpy.fromfile", Call(Global("numpy", "fromfile"), (str(text),)), "numpy.fromfile"),
        g("numpy.loadtxt", Call(Global("numpy", "loadtxt"), (str(text),)), "numpy.loadtxt"),
        g("pandas.read_csv", Call(Global("pandas", "read_csv"), (str(text),)), "pandas.read_csv"),
        g("scipy.io.loadmat", Call(Global("scipy.io", "loadmat"), (str(text),)), "scipy.io.loadmat"),
        # attribute getters and importers that reach any callable
        g(
            "builtins.getattr",
            Call(Call(Global("builtins", "getattr"), (Global("numpy", "ndarray"), "tofile")), (array(), s_out)),
            "builtins.getattr",
            written,
        ),
        g(
            "operator.attrgetter",
            Call(Call(Call(Global("operator", "attrgetter"), ("tofile",)), (array(),)), (s_out,)),
            "operator.attrgetter",
            written,
        ),
        g(
            "functools.partial",
            Call(Call(Global("functools", "partial"), (Global("numpy", "save"), s_out)), (array(),)),
            "functools.partial",
            lambda: Path(s_out + ".npy").exists(),
        ),
        g(
            "numpy.core._ufunc_reconstruct imports posix.system",
            Call(Call(Global("numpy.core", "_ufunc_reconstruct"), ("posix", "system")), (f"touch {marker}",)),
            "numpy.core._ufunc_reconstruct",
            ran,
        ),
        g(
            "importlib.import_module",
            Call(Global("importlib", "import_module"), ("sklearn.utils._testing",)),
            "importlib.import_module",
        ),
        g(
            "sklearn.utils._testing.assert_run_python_script",
            Call(Global("sklearn.utils._testing", "assert_run_python_script"), (f"open({s_out!r}, 'w')",)),
            "sklearn.utils._testing.assert_run_python_script",
            written,
        ),
        g(
            "sklearn.utils.discovery.all_estimators (imports every module)",
            Call(Global("sklearn.utils.discovery", "all_estimators"), ()),
            "sklearn.utils.discovery.all_estimators",
        ),
        # an object array's nested stream: joblib unpickles it with a fresh unpickler
        Gadget("nested object-array stream", object_array_stream(touch_pickle(marker)), "posix.system", ran),
    ]
