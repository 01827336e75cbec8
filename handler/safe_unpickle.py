"""Load a joblib model bundle importing only the globals of handler/model_globals.txt.

joblib.load would import and call anything a pickle names; this is joblib's own unpickler with find_class
restricted and its array step re-done strictly (docs/handler.md#why-an-allow-list-unpickler-and-not-skops).
"""

from __future__ import annotations

import _compat_pickle
import importlib
import io
import pickle
from typing import Any

import numpy as np
from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler
from joblib.numpy_pickle_utils import _validate_fileobject_and_memmap

from handler.model_globals import allowed_globals, display

ARRAY_WRAPPER = ("joblib.numpy_pickle", "NumpyArrayWrapper")
_PurePythonUnpickler: Any = pickle.__dict__["_Unpickler"]  # joblib's base: BUILD can be intercepted
_WRAPPER_FIELDS = {"subclass", "shape", "order", "dtype", "allow_mmap", "numpy_array_alignment_bytes"}


class ForbiddenGlobal(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list; nothing of it was imported or called."""

    def __init__(self, module: str, name: str) -> None:
        super().__init__(f"{display(module, name)} is not in the model allow-list")
        self.module = module
        self.name = name


class _Policy:
    """What find_class may resolve: the allow-list, or (audit) everything, recording what was asked."""

    def __init__(self, allowed: frozenset[tuple[str, str]] | None) -> None:
        self.allowed = allowed
        self.seen: set[tuple[str, str]] = set()

    def resolve(self, proto: int, module: str, name: str, nested: bool) -> Any:
        if proto < 3:  # protocols 0-2 may use Python 2 names, which pickle maps; judge the mapped name
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            else:
                module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        self.seen.add((module, name))
        if self.allowed is not None and (
            (module, name) not in self.allowed or (nested and (module, name) == ARRAY_WRAPPER)
        ):
            raise ForbiddenGlobal(module, name)
        value: Any = importlib.import_module(module)
        for part in name.split("."):
            value = getattr(value, part)
        return value


def _refuse_class_build(stack: list[Any]) -> None:
    if len(stack) >= 2 and isinstance(stack[-2], type):
        raise pickle.UnpicklingError(f"BUILD on the class {stack[-2].__qualname__}: a model never sets class state")


class _NestedUnpickler(_PurePythonUnpickler):  # type: ignore[misc]
    """An object array's own pickle stream (joblib writes it with pickle.dump inside the container)."""

    dispatch = _PurePythonUnpickler.dispatch.copy()

    def __init__(self, handle: Any, policy: _Policy) -> None:
        super().__init__(handle)
        self.policy = policy

    def find_class(self, module: str, name: str) -> Any:
        return self.policy.resolve(self.proto, module, name, nested=True)

    def load_build(self) -> None:
        _refuse_class_build(self.stack)
        _PurePythonUnpickler.load_build(self)

    dispatch[pickle.BUILD[0]] = load_build


class _AllowListUnpickler(NumpyUnpickler):  # type: ignore[misc]
    dispatch = NumpyUnpickler.dispatch.copy()

    def __init__(self, handle: Any, policy: _Policy) -> None:
        super().__init__("", handle, ensure_native_byte_order=True)
        self.policy = policy

    def find_class(self, module: str, name: str) -> Any:
        return self.policy.resolve(self.proto, module, name, nested=False)

    def load_build(self) -> None:
        _refuse_class_build(self.stack)
        _PurePythonUnpickler.load_build(self)
        if type(self.stack[-1]) is NumpyArrayWrapper:
            self.stack[-1] = self.read_wrapped_array(self.stack[-1])

    dispatch[pickle.BUILD[0]] = load_build

    def read_wrapped_array(self, wrapper: NumpyArrayWrapper) -> np.ndarray[Any, Any]:
        fields = vars(wrapper)
        shape, order, dtype = fields.get("shape"), fields.get("order"), fields.get("dtype")
        if (
            not set(fields) <= _WRAPPER_FIELDS
            or not isinstance(dtype, np.dtype)
            or not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape))
            or order not in ("C", "F")
            or fields.get("subclass") is not np.ndarray
        ):
            raise pickle.UnpicklingError(f"a NumpyArrayWrapper with unexpected fields {sorted(fields)}")
        if dtype.hasobject:
            array = _NestedUnpickler(self.file_handle, self.policy).load()
            if not isinstance(array, np.ndarray):
                raise pickle.UnpicklingError(f"an object array's stream holds a {type(array).__name__}")
            return array
        # joblib's own reader, called on the class so that no attribute of the instance is called
        return NumpyArrayWrapper.read_array(wrapper, self, self.ensure_native_byte_order)  # type: ignore[no-any-return]


def _load(data: bytes, policy: _Policy) -> Any:
    with _validate_fileobject_and_memmap(io.BytesIO(data), "", None) as (handle, _):
        return _AllowListUnpickler(handle, policy).load()


def load_bundle(data: bytes, allowed: frozenset[tuple[str, str]] | None = None) -> Any:
    """joblib.load(data) importing only `allowed` (default: handler/model_globals.txt); else ForbiddenGlobal."""
    return _load(data, _Policy(allowed_globals() if allowed is None else allowed))


def referenced_globals(trusted: bytes) -> set[tuple[str, str]]:
    """Every global a bundle this process just made references; it is loaded unrestricted, so never
    call this on bytes from elsewhere (training uses it on its own dump, to name what the list lacks)."""
    policy = _Policy(None)
    _load(trusted, policy)
    return policy.seen
