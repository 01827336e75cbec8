"""A static reading of a joblib file (compression, referenced names, versions), hand-written so that nothing the pickle
names is imported or called: opcodes move a symbolic stack; raw array bytes are skipped by their computed size."""

import _compat_pickle
import bz2
import importlib
import io
import lzma
import math
import pickletools
import re
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ci.errors import PipelineError

ZFILE_PREFIX = b"ZF"  # joblib < 0.9.3: arrays in separate files, a format joblib itself deprecates
# joblib.compressor: prefix -> name and decompressor, in joblib's registration order (lz4 is optional).
MAGIC: list[tuple[bytes, str, Callable[[], Any]]] = [
    (b"\x78", "zlib", zlib.decompressobj),
    (b"\x1f\x8b", "gzip", lambda: zlib.decompressobj(31)),
    (b"BZ", "bz2", bz2.BZ2Decompressor),
    (b"\x5d\x00", "lzma", lzma.LZMADecompressor),
    (b"\xfd\x37\x7a\x58\x5a", "xz", lzma.LZMADecompressor),
    (b"\x04\x22\x4d\x18", "lz4", lambda: importlib.import_module("lz4.frame").LZ4FrameDecompressor()),
]
# A model is megabytes; a stream that inflates past this is refused rather than filling memory.
MAX_DECOMPRESSED_BYTES = 2 * 1024**3
OLD_WRAPPERS = {"joblib.numpy_pickle_compat.NDArrayWrapper", "joblib.numpy_pickle_compat.ZNDArrayWrapper"}
UFUNC_RECONSTRUCTORS = {"numpy.core._ufunc_reconstruct", "numpy._core._ufunc_reconstruct"}
MAX_NESTING = 8
NPY_ITEM_HASOBJECT = 0x01  # numpy's dtype.flags bit for "contains Python objects"
_TYPESTR = re.compile(r"[<>|=]?([a-zA-Z])(\d+)?")
# Opcodes that push a fresh value, and those that collect what follows the last MARK.
_FRESH: dict[str, Callable[[], Any]] = {
    "NONE": lambda: None,
    "NEWTRUE": lambda: True,
    "NEWFALSE": lambda: False,
    "EMPTY_LIST": list,
    "EMPTY_TUPLE": tuple,
    "EMPTY_SET": list,
}
_FROM_MARK: dict[str, Callable[[list[Any]], Any]] = {"LIST": list, "TUPLE": tuple, "FROZENSET": list}
# Opcodes a static reading cannot resolve, and why each refuses the stream.
_UNRESOLVABLE = {
    **dict.fromkeys(("PERSID", "BINPERSID"), "persistent id at byte {pos}: joblib never writes one"),
    **dict.fromkeys(("EXT1", "EXT2", "EXT4"), "{name} {arg} at byte {pos}: a copyreg extension code names a global"),
    "NEXT_BUFFER": "out-of-band buffer at byte {pos}: joblib never writes one",
}
# Opcodes that push their argument as it is (numbers, strings, bytes).
_LITERALS = set(
    "INT BININT BININT1 BININT2 LONG LONG1 LONG4 FLOAT BINFLOAT STRING BINSTRING SHORT_BINSTRING UNICODE BINUNICODE "  # noqa: SIM905
    "SHORT_BINUNICODE BINUNICODE8 BINBYTES SHORT_BINBYTES BINBYTES8 BYTEARRAY8".split()
)


class ScanError(PipelineError):
    """The file cannot be read statically (not a joblib container, malformed, truncated, unknown array layout)."""


def read_container(path: Path, raw: bytes) -> tuple[str, bytes]:
    """The compression ("none" or MAGIC's name) and the decompressed pickle stream (opcodes and raw array bytes)."""
    if raw.startswith(ZFILE_PREFIX):
        raise ScanError(
            f"{path} was written by joblib < 0.10 (arrays in separate files); it cannot be verified",
            "retrain and dump the model with the joblib of the training lock",
        )
    found = ((name, decompressor) for prefix, name, decompressor in MAGIC if raw.startswith(prefix))
    compression, decompressor = next(found, ("none", None))
    if decompressor is None:
        return compression, raw
    try:
        data: bytes = decompressor().decompress(raw, MAX_DECOMPRESSED_BYTES + 1)
    except ImportError as exc:
        raise ScanError(
            f"{path} is lz4-compressed and the lz4 package is not installed, so it cannot be scanned",
            "dump the model with compress=3 (zlib) or without compression, or install lz4",
        ) from exc
    except (zlib.error, OSError, lzma.LZMAError, EOFError, ValueError, RuntimeError) as exc:  # RuntimeError: lz4
        raise ScanError(
            f"{path} looks {compression}-compressed but does not decompress ({exc})",
            "the file is damaged or not a joblib dump: retrain with `python -m training`",
        ) from exc
    if len(data) > MAX_DECOMPRESSED_BYTES:
        raise ScanError(
            f"{path} inflates to more than {MAX_DECOMPRESSED_BYTES:,} bytes; refusing to scan it",
            "a model bundle is a few megabytes: check where this artifact came from",
        )
    return compression, data


@dataclass(eq=False)
class Reference:
    """A module-level name the pickle makes the unpickler import; GLOBAL and STACK_GLOBAL push it."""

    path: str  # module.qualname
    module: str
    name: str
    called: bool = False  # used as the callable of REDUCE/NEWOBJ/INST/OBJ
    via: str | None = None  # e.g. numpy._core._ufunc_reconstruct for ufunc references
    count: int = 0


@dataclass(eq=False)
class Obj:
    """What REDUCE/NEWOBJ/INST/OBJ would have built: the callable, its arguments, later its state."""

    factory: Any
    args: Any
    state: Any = None


def is_wrapper_global(value: Any) -> bool:
    """joblib's loader recognises the class, not the path: treat any joblib spelling as the wrapper."""
    return isinstance(value, Reference) and value.module.split(".")[0] == "joblib" and value.name == "NumpyArrayWrapper"


@dataclass(eq=False)
class SymDict:
    items: list[tuple[Any, Any]] = field(default_factory=list)
    sklearn_version: str | None = None

    def get(self, key: str) -> Any:
        return next((value for item_key, value in reversed(self.items) if item_key == key), None)


@dataclass(eq=False)
class Opaque:
    """A value the scanner does not model (an unpickled array, a persistent id, a buffer)."""

    what: str


@dataclass
class PickleScan:
    protocol: int | None = None
    references: dict[str, Reference] = field(default_factory=dict)
    sklearn_versions: dict[str, list[str]] = field(default_factory=dict)  # _sklearn_version -> classes recording it
    arrays: int = 0
    object_arrays: int = 0
    array_bytes_skipped: int = 0
    # Things a static reading cannot resolve; each one is a reason to refuse the artifact.
    unresolved: list[str] = field(default_factory=list)
    trailing_bytes: int = 0

    def reference(self, module: str, name: str, via: str | None = None) -> Reference:
        path = f"{module}.{name}"
        ref = self.references.setdefault(path, Reference(path, module, name, via=via))
        ref.count += 1
        return ref

    def to_dict(self) -> dict[str, Any]:
        references = {
            path: {"called": ref.called, "count": ref.count, **({"via": ref.via} if ref.via else {})}
            for path, ref in sorted(self.references.items())
        }
        versions = {version: sorted(set(owners)) for version, owners in sorted(self.sklearn_versions.items())}
        return {**asdict(self), "references": references, "sklearn_versions": versions}


def scan_stream(stream: bytes) -> PickleScan:
    result = PickleScan()
    handle = io.BytesIO(stream)
    _Walker(handle, result, depth=0).run()
    result.trailing_bytes = len(stream) - handle.tell()
    if result.trailing_bytes:
        result.unresolved.append(f"{result.trailing_bytes} bytes follow the pickle's STOP opcode (joblib writes none)")
    return result


class _Walker:
    def __init__(self, handle: io.BytesIO, result: PickleScan, depth: int) -> None:
        self.handle = handle
        self.result = result
        self.depth = depth
        self.stack: list[Any] = []
        self.metastack: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.unclaimed: dict[SymDict, str] = {}  # dicts that record a _sklearn_version no BUILD has claimed yet
        self.proto = 0

    def push(self, value: Any) -> None:
        """Late-bound on purpose: pop_mark() replaces self.stack while the value is computed."""
        self.stack.append(value)

    def pop_mark(self) -> list[Any]:
        items = self.stack
        self.stack = self.metastack.pop()
        return items

    def set_items(self, target: Any, items: list[Any]) -> None:
        """Items set on a reconstructed object (e.g. an OrderedDict) carry no references of their own."""
        if isinstance(target, SymDict):
            for key, value in zip(items[::2], items[1::2], strict=False):
                target.items.append((key, value))
                if key == "_sklearn_version" and isinstance(value, str):
                    target.sklearn_version = value
                    self.unclaimed[target] = value

    def run(self) -> None:
        try:
            for opcode, arg, pos in pickletools.genops(self.handle):
                try:
                    self.step(opcode.name, arg, pos)
                except IndexError as exc:  # popped past the bottom of the stack or of the MARKs
                    raise ScanError(
                        f"malformed pickle: {opcode.name} at byte {pos} finds too few items on the stack",
                        "the artifact is damaged; retrain the model",
                    ) from exc
                if opcode.name == "STOP":
                    break
        except ValueError as exc:  # genops: truncated or unknown opcode
            raise ScanError(
                f"malformed pickle stream ({exc})", "the artifact is damaged or not a joblib dump; retrain"
            ) from exc
        for version in self.unclaimed.values():
            self.result.sklearn_versions.setdefault(version, []).append("(unknown class)")

    def step(self, name: str, arg: Any, pos: int | None) -> None:
        if name == "PROTO":
            self.proto = int(arg)
            if self.depth == 0 and self.result.protocol is None:
                self.result.protocol = self.proto
        elif name in ("FRAME", "STOP", "READONLY_BUFFER"):
            pass
        elif name == "MARK":
            self.metastack.append(self.stack)
            self.stack = []
        elif name == "POP" and self.stack:
            self.stack.pop()
        elif name in ("POP", "POP_MARK"):  # POP on an empty stack discards the topmost MARK, as pickle does
            self.pop_mark()
        elif name == "DUP":
            self.push(self.stack[-1])
        elif name in _LITERALS:
            self.push(arg)
        elif name in _FRESH:
            self.push(_FRESH[name]())
        elif name in _FROM_MARK:
            self.push(_FROM_MARK[name](self.pop_mark()))
        elif name in ("EMPTY_DICT", "DICT"):
            mapping = SymDict()
            self.set_items(mapping, self.pop_mark() if name == "DICT" else [])
            self.push(mapping)
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            self.push(tuple([self.stack.pop() for _ in range(int(name[-1]))][::-1]))
        elif name in ("APPEND", "APPENDS", "ADDITEMS"):
            items = [self.stack.pop()] if name == "APPEND" else self.pop_mark()
            if isinstance(self.stack[-1], list):  # sets are lists here: nothing reads them but the references inside
                self.stack[-1].extend(items)
        elif name in ("SETITEM", "SETITEMS"):
            items = [self.stack.pop() for _ in range(2)][::-1] if name == "SETITEM" else self.pop_mark()
            self.set_items(self.stack[-1], items)
        elif name == "GLOBAL":
            self.push(self.reference(*str(arg).partition(" ")[::2]))
        elif name == "STACK_GLOBAL":
            qualname = self.stack.pop()
            module = self.stack.pop()
            if isinstance(module, str) and isinstance(qualname, str):
                self.push(self.reference(module, qualname))
            else:
                self.result.unresolved.append(
                    f"STACK_GLOBAL at byte {pos} takes its module/name from computed values "
                    f"({type(module).__name__}, {type(qualname).__name__}), not strings"
                )
                self.push(Opaque("unresolved global"))
        elif name in ("INST", "OBJ"):  # INST names the class in its argument, OBJ finds it below the arguments
            args = self.pop_mark()
            func = self.reference(*str(arg).partition(" ")[::2]) if name == "INST" else args.pop(0)
            self.call(func, tuple(args), pos)
            self.push(Obj(func, tuple(args)))
        elif name in ("NEWOBJ", "REDUCE", "NEWOBJ_EX"):
            kwargs = self.stack.pop() if name == "NEWOBJ_EX" else None
            args = self.stack.pop()
            func = self.stack.pop()
            self.call(func, args, pos)
            self.push(Obj(func, (args, kwargs) if name == "NEWOBJ_EX" else args))
        elif name == "BUILD":
            state = self.stack.pop()
            self.build(self.stack[-1], state)
        elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
            self.memo[len(self.memo) if name == "MEMOIZE" else int(arg)] = self.stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            if int(arg) not in self.memo:
                raise ScanError(f"malformed pickle: memo key {arg} read before written", "retrain the model")
            self.push(self.memo[int(arg)])
        elif name in _UNRESOLVABLE:
            if name == "BINPERSID":
                self.stack.pop()
            self.result.unresolved.append(_UNRESOLVABLE[name].format(name=name, arg=arg, pos=pos))
            self.push(Opaque(name))
        else:
            raise ScanError(f"pickle opcode {name} at byte {pos} is not understood", "retrain the model")

    def reference(self, module: str, name: str) -> Reference:
        """Protocols 0-2 may use Python 2 names; the unpickler maps them (fix_imports), so do we."""
        if self.proto < 3:
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            else:
                module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        return self.result.reference(module, name)

    def call(self, func: Any, args: Any, pos: int | None) -> None:
        if isinstance(func, Reference):
            func.called = True
        # The wrapper passed as an argument (copyreg._reconstructor(NumpyArrayWrapper, ...)) would make
        # joblib read array bytes after a BUILD the scan cannot tie to the class: refuse such streams.
        if isinstance(args, tuple) and any(is_wrapper_global(item) for item in args):
            self.result.unresolved.append(f"NumpyArrayWrapper constructed indirectly at byte {pos}")
        # numpy pickles a ufunc as _ufunc_reconstruct(module, name), an import by strings.
        if isinstance(func, Reference) and func.path in UFUNC_RECONSTRUCTORS:
            if isinstance(args, tuple) and len(args) == 2 and all(isinstance(item, str) for item in args):
                self.result.reference(args[0], args[1], via=func.path).called = True
            else:
                self.result.unresolved.append(f"{func.path} at byte {pos} with computed arguments")

    def build(self, target: Any, state: Any) -> None:
        if isinstance(target, Reference):
            self.result.unresolved.append(f"BUILD on the class {target.path} itself: it would overwrite class state")
        owner = target.factory.path if isinstance(target, Obj) and isinstance(target.factory, Reference) else None
        for part in state if isinstance(state, tuple) and len(state) == 2 else (state,):
            if isinstance(part, SymDict) and part.sklearn_version is not None:
                self.result.sklearn_versions.setdefault(part.sklearn_version, []).append(owner or "(unknown class)")
                self.unclaimed.pop(part, None)
        if not isinstance(target, Obj):
            return
        target.state = state
        if is_wrapper_global(target.factory) and self.depth > 0:
            # Inside an object array's stream joblib reads plain pickle: no bytes follow this BUILD.
            self.result.unresolved.append("NumpyArrayWrapper inside an object array's pickle (joblib never nests one)")
        elif is_wrapper_global(target.factory):
            self.stack[-1] = self.read_array(state)
        elif owner in OLD_WRAPPERS:
            self.result.unresolved.append(f"{owner}: arrays stored in separate files (joblib < 0.10)")

    def read_array(self, state: Any) -> Opaque:
        if not isinstance(state, SymDict):
            raise ScanError("NumpyArrayWrapper without a state dictionary", "retrain the model")
        shape = state.get("shape")
        if not (isinstance(shape, tuple) and all(isinstance(n, int) and n >= 0 for n in shape)):
            raise ScanError(f"NumpyArrayWrapper with an unreadable shape {shape!r}", "retrain the model")
        hasobject, itemsize = dtype_layout(state.get("dtype"))
        self.result.arrays += 1
        if hasobject:
            # write_array: pickle.dump(array, file) — a complete nested pickle stream.
            self.result.object_arrays += 1
            if self.depth >= MAX_NESTING:
                raise ScanError("object arrays nested too deeply", "retrain the model")
            _Walker(self.handle, self.result, self.depth + 1).run()
            return Opaque("object array")
        if state.get("numpy_array_alignment_bytes") is not None:
            padding = self.handle.read(1)
            if len(padding) != 1:
                raise ScanError("stream ends inside an array's padding", "the artifact is truncated; retrain")
            self.skip(padding[0])
        size = math.prod(shape) * itemsize
        self.skip(size)
        self.result.array_bytes_skipped += size
        return Opaque("array")

    def skip(self, size: int) -> None:
        start = self.handle.tell()
        end = self.handle.seek(0, io.SEEK_END)
        if end - start < size:
            raise ScanError(
                f"stream ends inside array data ({size:,} bytes expected at offset {start:,}, {end - start:,} left)",
                "the artifact is truncated; retrain",
            )
        self.handle.seek(start + size)


def dtype_layout(dtype: Any) -> tuple[bool, int]:
    """(has Python objects, bytes per item) of a pickled numpy dtype, from its reduce arguments and state."""
    if not (isinstance(dtype, Obj) and isinstance(dtype.args, tuple) and dtype.args):
        raise ScanError(f"NumpyArrayWrapper with an unreadable dtype {dtype!r}", "retrain the model")
    typestr = dtype.args[0]
    state = dtype.state
    flags = state[7] if isinstance(state, tuple) and len(state) >= 8 and isinstance(state[7], int) else 0
    elsize = state[5] if isinstance(state, tuple) and len(state) >= 6 and isinstance(state[5], int) else -1
    match = _TYPESTR.fullmatch(typestr) if isinstance(typestr, str) else None
    if match is None:
        raise ScanError(f"numpy dtype {typestr!r} is not understood by the static scan", "retrain the model")
    kind, digits = match.group(1), match.group(2)
    # joblib sizes the raw bytes with numpy's own dtype; any reading that could differ from
    # numpy's is refused, so the scan can never skip bytes that joblib would read as opcodes.
    if kind == "O" or flags & NPY_ITEM_HASOBJECT:
        if kind != "O":
            raise ScanError(f"numpy dtype {typestr!r} claims Python objects; the scan refuses it", "retrain the model")
        return True, 8
    if kind in "USV" and digits is None:
        if elsize <= 0:
            raise ScanError(f"numpy dtype {typestr!r} has no item size", "retrain the model")
        return False, elsize
    if digits is None or (elsize > 0 and elsize != int(digits)):
        raise ScanError(f"numpy dtype {typestr!r} with item size {elsize} is inconsistent", "retrain the model")
    return False, int(digits)
