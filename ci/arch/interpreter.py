"""The interpreter that runs the target's native code (natively, under qemu, or missing: then the proofs it would
make are recorded missing and deploy refuses them), isolated (`-I -S`) with sys.path set explicitly, as on Lambda."""

import functools
import os
import platform
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ci.arch import sysroot
from ci.config import Target
from ci.python import find_python

# Passed through so a child's numerical libraries compute on this CPU what its parent's would.
PASSTHROUGH_ENV = ("PATH", "LANG", "LC_ALL", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "SYSTEMROOT")


@functools.cache
def target_python(version: str) -> str:
    """The interpreter for a target Python version like "3.12" (outside any virtualenv; see ci/python.py)."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return getattr(sys, "_base_executable", sys.executable)
    return find_python(version)


def isolated_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    passed = {key: os.environ[key] for key in PASSTHROUGH_ENV if key in os.environ}
    return {"LANG": "C.UTF-8", **passed, **(extra or {})}


def isolated_command(python: str, sys_path: Sequence[Path | str], code: str) -> list[str]:
    """argv running `code` with sys.path = `sys_path` + stdlib; -B: written bytecode would make the tree look warm."""
    prelude = f"import sys; sys.path[:0] = {[str(p) for p in sys_path]!r}\n"
    return [python, "-I", "-S", "-B", "-c", prelude + code]


def run_isolated(
    python: str, sys_path: Sequence[Path | str], code: str, env: Mapping[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        isolated_command(python, sys_path, code),
        env=isolated_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


NATIVE = "native"
EMULATED = "emulated"
MISSING = "missing"


@dataclass(frozen=True)
class TargetInterpreter:
    """`python` runs code on the target's machine (None when `mode` is missing); `detail` says how or why not."""

    mode: str  # native | emulated | missing
    python: str | None
    detail: str
    # The files whose bytes decide what `python` does: a proof made by other binaries is not reused (ci/layer/build.py).
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
    machine, version = target.machine, target.runtime.python
    if host == machine:
        python = target_python(version)
        return TargetInterpreter(NATIVE, python, f"{host} host, {python}", _with_libpython(python))
    qemu = sysroot.find_qemu(machine)
    root = sysroot.location(cache, machine).resolve()
    guest = root / "usr" / "bin" / f"python{version}"
    if qemu is None or not guest.is_file():
        missing = [] if qemu else [f"no {sysroot.QEMU.get(machine, ('qemu',))[0]} on PATH"]
        missing += [] if guest.is_file() else [f"no {machine} python{version} in {root}"]
        return TargetInterpreter(
            MISSING,
            None,
            f"no {machine} interpreter on this {host} host ({'; '.join(missing)}): run this on an {machine} host "
            f"(GitHub runner {target.runner}) or install emulation: as root `apt-get install qemu-user-static "
            f"binutils-{machine}-linux-gnu && dpkg --add-architecture {sysroot.DEBIAN_ARCH.get(machine, machine)} "
            f"&& apt-get update`, then `python -m ci.arch.sysroot --machine {machine} --python {version} "
            f"--cache-dir {cache}`",
        )
    # An executable that behaves like the target's python (argv passed through), for every caller of `python`.
    script = f'#!/bin/sh\nexec {qemu} -L "{root}" "{guest}" "$@"\n'
    wrapper = cache / "emulated" / f"python{version}-{machine}"
    if not (wrapper.is_file() and wrapper.read_text() == script):
        wrapper.parent.mkdir(parents=True, exist_ok=True)
        partial = wrapper.with_name(f"{wrapper.name}.{os.getpid()}.partial")
        partial.write_text(script)
        partial.chmod(0o755)
        partial.replace(wrapper)
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
