"""`python -m ci.arch.sysroot`: the target machine's CPython from apt-verified Debian packages, unpacked (nothing
installed) into <cache>/sysroot-<machine>/ for qemu user-mode emulation; Debian 12 ships python3.11 only."""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ci.errors import PipelineError

DEBIAN_ARCH = {"aarch64": "arm64", "x86_64": "amd64"}
QEMU = {"aarch64": ("qemu-aarch64-static", "qemu-aarch64"), "x86_64": ("qemu-x86_64-static", "qemu-x86_64")}
# python3.X-minimal's and libpython3.X-stdlib's dependencies (apt-cache depends), plus the C++ and
# GCC runtime libraries manylinux wheels may link against (libstdc++, libgcc_s) but do not vendor.
LIBRARIES = (
    "libc6", "libgcc-s1", "libstdc++6", "zlib1g", "libexpat1", "libffi8", "libssl3", "libbz2-1.0", "liblzma5",
    "libsqlite3-0", "libuuid1", "libncursesw6", "libtinfo6", "libreadline8", "libdb5.3", "libcrypt1", "libnsl2",
    "libtirpc3", "libgssapi-krb5-2", "libkrb5-3", "libk5crypto3", "libkrb5support0", "libcom-err2", "libkeyutils1",
)  # fmt: skip


def find_qemu(machine: str) -> str | None:
    return next((found for name in QEMU.get(machine, ()) if (found := shutil.which(name))), None)


def location(cache: Path, machine: str) -> Path:
    return cache / f"sysroot-{machine}"


def install(cache: Path, machine: str, version: str) -> Path:
    """Download and unpack the packages into the sysroot (replaced whole, never half-written); returns it."""
    arch = DEBIAN_ARCH[machine]
    target = location(cache, machine)
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sysroot-", dir=cache) as scratch:
        debs, tree = Path(scratch) / "debs", Path(scratch) / "root"
        debs.mkdir()
        packages = [f"python{version}-minimal", f"libpython{version}-minimal", f"libpython{version}-stdlib", *LIBRARIES]
        names = [f"{name}:{arch}" for name in packages]
        run = subprocess.run(["apt-get", "download", *names], cwd=debs, capture_output=True, text=True, check=False)
        if run.returncode != 0:
            raise PipelineError(
                f"apt-get could not download the {arch} packages of python{version}: "
                + (run.stderr.strip().splitlines() or ["(no output)"])[-1],
                f"as root: `dpkg --add-architecture {arch} && apt-get update` (Debian 12 ships python3.11 only)",
            )
        for deb in sorted(debs.glob("*.deb")):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True)
        python = tree / "usr" / "bin" / f"python{version}"
        if not python.is_file():
            raise PipelineError(f"the {arch} packages hold no usr/bin/python{version}", "check the package names")
        # The stdlib's bytecode, compiled by the guest as Debian's postinst does (.debs hold none; checks run with -B).
        if (qemu := find_qemu(machine)) is not None:
            stdlib = tree / "usr" / "lib" / f"python{version}"
            # A few files are not valid Python on purpose (lib2to3's test data): compileall reports them, nothing else.
            compiled = subprocess.run(
                [qemu, "-L", str(tree), str(python), "-m", "compileall", "-q", "-j", "0", str(stdlib)],
                capture_output=True,
                text=True,
                check=False,
            )
            if not (stdlib / "__pycache__").is_dir():
                raise PipelineError(
                    f"python{version} for {machine} could not compile its standard library under qemu: "
                    + (compiled.stderr.strip().splitlines() or ["(no output)"])[-1],
                    "check that qemu-user-static runs the sysroot's interpreter (make emulation)",
                )
        old = target.with_name(f"{target.name}.old-{os.getpid()}")
        if target.exists():
            target.rename(old)
        tree.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    return target


def main(argv: list[str] | None = None) -> int:
    from ci.config import load_config

    parser = argparse.ArgumentParser(prog="python -m ci.arch.sysroot", description=__doc__.split("\n\n")[0])
    parser.add_argument("--machine", default="aarch64", choices=sorted(DEBIAN_ARCH), help="guest machine")
    parser.add_argument("--python", default=None, help="CPython version (default: the target's in pipeline.toml)")
    parser.add_argument("--cache-dir", type=Path, default=Path("build/cache"), help="where the sysroot goes")
    args = parser.parse_args(argv)
    version = args.python or load_config().target.runtime.python
    try:
        root = install(args.cache_dir, args.machine, version)
    except PipelineError as exc:
        print(f"error: {exc.problem}\n  fix: {exc.fix}", file=sys.stderr)
        return 1
    print(f"sysroot: {root} (python{version} for {args.machine}; run it with qemu-{args.machine}-static -L {root})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
