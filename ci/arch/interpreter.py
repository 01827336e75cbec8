"""The interpreter that runs the target's native code: natively, emulated (qemu), or missing; without one the
build records the proofs it could not make (imports, trace, smoke) and deploy refuses them."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

from ci.arch import sysroot
from ci.config import Target
from ci.isolated import target_python

NATIVE = "native"
EMULATED = "emulated"
MISSING = "missing"


@dataclass(frozen=True)
class TargetInterpreter:
    """`python` runs code on the target's machine (None when `mode` is missing); `detail` says how or why not."""

    mode: str  # native | emulated | missing
    python: str | None
    detail: str
    # The files whose bytes decide what `python` does (the interpreter and its libpython; under emulation
    # qemu and the guest's): a proof made by other binaries is not reused (ci/layer/build.py).
    binaries: tuple[str, ...] = ()

    @property
    def available(self) -> bool:
        return self.python is not None

    def proof(self) -> str:
        """How a proof made with this interpreter is recorded (build.json and smoke.json `proofs`)."""
        if self.python is None:
            return f"missing: {self.detail}"
        return f"proven {'natively' if self.mode == NATIVE else 'under emulation'} ({self.detail})"

    def to_json(self) -> dict[str, str]:
        return {"mode": self.mode, "detail": self.detail}


def find_interpreter(target: Target, cache: Path, host: str | None = None) -> TargetInterpreter:
    """Native if this host is the target's machine, else qemu + the sysroot's CPython, else missing (with the fix)."""
    host = host or platform.machine()
    version = target.runtime.python
    if host == target.machine:
        python = target_python(version)
        return TargetInterpreter(NATIVE, python, f"{host} host, {python}", _with_libpython(python))
    qemu = sysroot.find_qemu(target.machine)
    root = sysroot.location(cache, target.machine).resolve()
    guest = root / "usr" / "bin" / f"python{version}"
    if qemu is None or not guest.is_file():
        missing = [] if qemu else [f"no {sysroot.QEMU.get(target.machine, ('qemu',))[0]} on PATH"]
        missing += [] if guest.is_file() else [f"no {target.machine} python{version} in {root}"]
        return TargetInterpreter(
            MISSING,
            None,
            f"no {target.machine} interpreter on this {host} host ({'; '.join(missing)}): run this on an "
            f"{target.machine} host (GitHub runner {target.runner}) or install emulation: "
            f"{sysroot.install_hint(target.machine, version, cache)}",
        )
    wrapper = _wrapper(cache, target.machine, version, qemu, root, guest)
    return TargetInterpreter(
        EMULATED,
        str(wrapper),
        f"{Path(qemu).name} -L {root} {guest.relative_to(root)}",
        (qemu, *_with_libpython(guest)),
    )


def _with_libpython(python: str | Path) -> tuple[str, ...]:
    """The executable and the libpython beside it (lib/ or lib/<triplet>/ of its prefix), if it is linked to one."""
    prefix = Path(os.path.realpath(python)).parent.parent
    shared = sorted(
        str(p) for pattern in ("lib/libpython3*.so*", "lib/*/libpython3*.so*") for p in prefix.glob(pattern)
    )
    return (str(python), *shared)


def _wrapper(cache: Path, machine: str, version: str, qemu: str, root: Path, guest: Path) -> Path:
    """An executable that behaves like the target's python (argv passed through), for every caller of `python`."""
    script = f'#!/bin/sh\nexec {qemu} -L "{root}" "{guest}" "$@"\n'
    wrapper = cache / "emulated" / f"python{version}-{machine}"
    if wrapper.is_file() and wrapper.read_text() == script:
        return wrapper
    wrapper.parent.mkdir(parents=True, exist_ok=True)
    partial = wrapper.with_name(f"{wrapper.name}.{os.getpid()}.partial")
    partial.write_text(script)
    partial.chmod(0o755)
    partial.replace(wrapper)
    return wrapper
