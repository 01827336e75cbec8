"""Compiling the four locks with uv for the target, so `python -m ci lock` is repeatable.

The layer lock is resolved for the Lambda target with the runtime's own packages, the host locks constrained
to it (docs/design.md, "Locks resolved for the target"); output is byte-identical on an unchanged tree.
"""

from __future__ import annotations

import logging
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ci.config import Config, shipped_packages
from ci.errors import PipelineError
from ci.lock.files import read_in
from ci.lock.lockfile import LockFile, read_lock

logger = logging.getLogger(__name__)

COMPILE_COMMAND = "python -m ci lock"


@dataclass(frozen=True)
class LockJob:
    name: str  # layer | training | pipeline | dev
    cwd: Path  # uv runs here so annotations stay relative to the .in file
    inputs: tuple[str, ...]  # .in files relative to cwd
    output: Path
    python_platform: str
    python_version: str
    only_binary: bool = False
    provided: tuple[str, ...] = ()  # pins the runtime brings: resolved with, never emitted
    extra_args: tuple[str, ...] = field(default=())
    bundled: tuple[str, ...] = ()  # runtime packages the layer ships anyway ([lock] bundle_runtime_packages)
    runtime: str = ""  # the Lambda runtime that provides `provided` (named in the lock's notes)
    shipped: tuple[tuple[str, str], ...] = ()  # (name, version) of everything that runtime ships

    @property
    def in_file(self) -> Path:
        return self.cwd / self.inputs[0]


def lock_jobs(config: Config) -> list[LockJob]:
    """The four locks in the order they depend on each other (each host lock is constrained to those before it)."""
    lock = config.lock
    target = config.target
    layer_in = lock.requirements_in
    bundled = lock.bundle_runtime_packages
    provided = tuple(pin for pin in target.runtime.provided if canonicalize_name(Requirement(pin).name) not in bundled)
    host_python = target.runtime.python  # training pickles with the Python that unpickles on Lambda
    host_locks = (
        ("training", lock.training_in, lock.training_lock),
        ("pipeline", lock.pipeline_in, lock.pipeline_lock),
        ("dev", lock.dev_in, lock.dev_lock),
    )
    return [
        LockJob(
            name="layer",
            cwd=layer_in.parent,
            inputs=(layer_in.name,),
            output=lock.layer_lock,
            python_platform=target.uv_platform,
            python_version=target.runtime.python,
            only_binary=True,
            provided=provided,
            bundled=bundled,
            runtime=target.runtime.name,
            shipped=tuple(shipped_packages(target.runtime.name).items()),
        ),
        *(
            LockJob(
                name=name,
                cwd=source.parent,
                inputs=(source.name,),
                output=output,
                python_platform=lock.host_platform,
                python_version=host_python,
            )
            for name, source, output in host_locks
        ),
    ]


def uv_binary() -> str:
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found is None:
            raise PipelineError(
                "uv is not installed",
                "install the pipeline requirements: `make venv` (uv is in requirements-pipeline.txt)",
            ) from None
        return found


def compile_lock(
    job: LockJob,
    index_url: str,
    output: Path | None = None,
    upgrade: bool = False,
    upgrade_packages: tuple[str, ...] = (),
    uv_cache: Path | None = None,
) -> Path:
    """Run uv for `job`, writing `output` (default: the job's lock). Existing pins there are preferred."""
    output = output or job.output
    left_out: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="lock-") as tmp:
        inputs = list(job.inputs)
        no_emit: list[str] = []
        if job.provided:
            refuse_unprovidable(job)
            provided_file = Path(tmp) / "provided.txt"
            provided_file.write_text("".join(f"{pin}\n" for pin in job.provided))
            inputs.append(str(provided_file))
            no_emit, left_out = runtime_only_packages(
                job, index_url, inputs, output, Path(tmp), uv_cache, upgrade, upgrade_packages
            )
        _run_uv(job, index_url, inputs, no_emit, output, upgrade, upgrade_packages, uv_cache)
    if job.runtime:
        notes = runtime_notes(job, left_out, read_lock(output))
        if notes:
            output.write_text(output.read_text().rstrip("\n") + "\n\n" + "".join(f"{line}\n" for line in notes))
    return output


NOTES_START = "# Runtime packages"


def runtime_notes(job: LockJob, left_out: dict[str, list[str]], lock: LockFile) -> list[str]:
    """The lock's last lines: each package the layer needs but leaves out (the runtime provides it, at which
    version) and each it bundles instead. Written by every compile, so a fresh resolve writes them too."""
    shipped = dict(job.shipped)
    bundled = [name for name in job.bundled if name in lock.pins]
    if not left_out and not bundled:
        return []
    lines = [f"{NOTES_START} ({job.runtime} provides them in /var/runtime; ci/policy/runtime-{job.runtime}.txt):"]
    for name, parents in sorted(left_out.items()):
        lines.append(
            f"#   {name}=={shipped.get(name, '?')} left out, from the runtime (needed by {', '.join(parents)})"
        )
    for name in bundled:
        lines.append(
            f"#   {name}=={lock.pins[name].version} bundled in the layer ([lock] bundle_runtime_packages; the runtime "
            f"has {shipped.get(name, '?')})"
        )
    if left_out:
        lines.append('# To ship one in the layer instead: [lock] bundle_runtime_packages = ["NAME"] in pipeline.toml.')
    return lines


def read_notes(lock_file: Path) -> list[str]:
    """runtime_notes as written at the end of `lock_file` (without the comment marks), or []."""
    lines = lock_file.read_text().splitlines() if lock_file.is_file() else []
    starts = [index for index, line in enumerate(lines) if line.startswith(NOTES_START)]
    return [line.lstrip("#").strip() for line in lines[starts[0] :]] if starts else []


def refuse_unprovidable(job: LockJob) -> None:
    """A direct requirement on a package the runtime provides must accept the runtime's version, or be bundled:
    said here in one line, before uv reports the conflict with the runtime's pin as a resolver trace."""
    provided: dict[str, Requirement] = {canonicalize_name(Requirement(p).name): Requirement(p) for p in job.provided}
    for direct in read_in(job.in_file, job.cwd):
        pin = provided.get(direct.name)
        if pin is None or direct.requirement.specifier.contains(str(next(iter(pin.specifier)).version), True):
            continue
        raise PipelineError(
            f"{direct.file.name}:{direct.line} asks for {direct.requirement}, but the {job.runtime or 'Lambda'} "
            f"runtime provides {pin} in /var/runtime, and the layer leaves provided packages out",
            f'ship your own in the layer: [lock] bundle_runtime_packages = ["{direct.name}"] in pipeline.toml, then '
            f"{COMPILE_COMMAND}; or accept the runtime's version in {direct.file.name}",
        )


def runtime_only_packages(
    job: LockJob,
    index_url: str,
    inputs: list[str],
    output: Path,
    tmp: Path,
    uv_cache: Path | None,
    upgrade: bool = False,
    upgrade_packages: tuple[str, ...] = (),
) -> tuple[list[str], dict[str, list[str]]]:
    """The provided packages and the dependencies only they need, in the order uv lists exclusions.

    A first resolve emits everything; its `# via` annotations tell which packages are reachable from
    the .in file without passing through a provided package. The rest belongs to the runtime. Also returned:
    each provided package the layer's own packages need (name -> what needs it), for the lock's notes. The
    probe upgrades what the real run upgrades: judged on the old versions, a package the new ones no
    longer need would stay in the layer and the next `--check` would call the lock stale.
    """
    probe = tmp / "all.txt"
    if output.is_file():
        shutil.copyfile(output, probe)  # same preferences as the real run, so the same versions
    _run_uv(job, index_url, inputs, [], probe, upgrade, upgrade_packages, uv_cache)
    pins = read_lock(probe).pins
    provided = [canonicalize_name(Requirement(pin).name) for pin in job.provided]
    direct = {req.name for req in read_in(job.in_file, job.cwd)}
    source = f"-r {job.inputs[0]}"
    needed = {name for name, pin in pins.items() if source in pin.via or name in direct} - set(provided)
    changed = True
    while changed:
        changed = False
        for name, pin in pins.items():
            if name not in needed and name not in provided and any(parent in needed for parent in pin.via):
                needed.add(name)
                changed = True
    excluded: list[str] = []
    for name in provided:
        excluded.append(name)
        children = sorted(
            child
            for child, pin in pins.items()
            if name in pin.via and child not in needed and child not in provided and child not in excluded
        )
        excluded += children
    left_out = {
        name: sorted(parent.removeprefix("-r ") for parent in pins[name].via if parent in needed or parent == source)
        for name in excluded
        if name in pins and any(parent in needed or parent == source for parent in pins[name].via)
    }
    return excluded, left_out


def _run_uv(
    job: LockJob,
    index_url: str,
    inputs: list[str],
    no_emit: list[str],
    output: Path,
    upgrade: bool,
    upgrade_packages: tuple[str, ...],
    uv_cache: Path | None,
) -> None:
    command = [uv_binary(), "pip", "compile", "--quiet", "--no-config", *inputs]
    command += ["--python-platform", job.python_platform, "--python-version", job.python_version]
    # The target is --python-version; the interpreter only builds an sdist's metadata. Without these,
    # uv searches PATH for the target's Python (running every pyenv shim) and, not finding one,
    # downloads an unhashed CPython from GitHub into ~/.local/share/uv (10 s of retries offline).
    command += ["--python", sys.executable, "--no-python-downloads"]
    if job.only_binary:
        command += ["--only-binary", ":all:"]
    command += ["--generate-hashes", "--index-url", index_url]
    for name in no_emit:
        command += ["--no-emit-package", name]
    if upgrade:
        command.append("--upgrade")
    for name in upgrade_packages:
        command += ["--upgrade-package", name]
    if uv_cache is not None:
        command += ["--cache-dir", str(uv_cache)]
    command += ["--custom-compile-command", COMPILE_COMMAND, "-o", str(output), *job.extra_args]
    logger.debug(f"run: {shlex.join(command)}")
    result = subprocess.run(command, cwd=job.cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        raise PipelineError(
            f"uv could not resolve {job.in_file.name} for {job.python_platform}, Python {job.python_version}:\n"
            f"{detail}",
            f"change the requirement uv names in {job.in_file.name} (a version with wheels for the target), "
            "then rerun `python -m ci lock`",
        )
