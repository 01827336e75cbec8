"""Compiling the four locks with uv (the layer's for the Lambda target, host locks constrained to it: docs/design.md),
plus uv's bootstrap file and ci/policy/runtime-*.txt; byte-identical when unchanged."""

import logging
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Self

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ci.config import Config, RuntimePolicy, shipped_packages
from ci.errors import PipelineError
from ci.lock.lockfile import COMPILE_COMMAND, RELOCK, DirectRequirement, LockFile, display_path, read_in, read_lock

logger = logging.getLogger(__name__)
NOTES_START = "# Runtime packages"  # where the lock's runtime notes begin


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
    extra_args: tuple[str, ...] = ()
    bundled: tuple[str, ...] = ()  # runtime packages the layer ships anyway ([lock] bundle_runtime_packages)
    runtime: str = ""  # the Lambda runtime that provides `provided` (named in the lock's notes)

    @property
    def in_file(self) -> Path:
        return self.cwd / self.inputs[0]

    @property
    def provided_versions(self) -> dict[str, str]:
        """Canonical name -> version of each package the runtime provides and this lock leaves out."""
        requirements = [Requirement(pin) for pin in self.provided]
        return {canonicalize_name(req.name): str(next(iter(req.specifier)).version) for req in requirements}

    def unprovidable(self, direct: DirectRequirement) -> tuple[str, str] | None:
        """(problem, fix) when `direct` asks for a package the runtime provides, but not at the runtime's version."""
        version = self.provided_versions.get(direct.name)
        if version is None or direct.requirement.specifier.contains(version, prereleases=True):
            return None
        where = direct.source.removeprefix("-r ")
        problem = (
            f"{where}:{direct.line} asks for {direct.requirement}, but the {self.runtime or 'Lambda'} runtime provides "
            f"{direct.name}=={version} in /var/runtime, and the layer leaves provided packages out"
        )
        fix = (
            f'ship your own in the layer: [lock] bundle_runtime_packages = ["{direct.name}"] in pipeline.toml, then '
            f"{RELOCK}; or accept the runtime's version in {where}"
        )
        return problem, fix


def lock_jobs(config: Config) -> list[LockJob]:
    """The four locks in the order they depend on each other (each host lock is constrained to those before it)."""
    lock = config.lock
    target = config.target
    bundled = lock.bundle_runtime_packages
    provided = tuple(pin for pin in target.runtime.provided if canonicalize_name(Requirement(pin).name) not in bundled)
    sources = {
        "layer": (lock.requirements_in, lock.layer_lock),
        "training": (lock.training_in, lock.training_lock),
        "pipeline": (lock.pipeline_in, lock.pipeline_lock),
        "dev": (lock.dev_in, lock.dev_lock),
    }
    jobs = [  # all for the runtime's Python: training pickles with the Python that unpickles on Lambda
        LockJob(name, source.parent, (source.name,), output, lock.host_platform, target.runtime.python)
        for name, (source, output) in sources.items()
    ]
    layer = replace(
        jobs[0],
        python_platform=target.uv_platform,
        only_binary=True,
        provided=provided,
        bundled=bundled,
        runtime=target.runtime.name,
    )
    return [layer, *jobs[1:]]


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
    flags = ["--generate-hashes", "--index-url", index_url, *(["--upgrade"] if upgrade else [])]
    flags += [arg for name in upgrade_packages for arg in ("--upgrade-package", name)]
    flags += ["--cache-dir", str(uv_cache)] if uv_cache is not None else []
    left_out: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="lock-") as tmp:
        inputs = list(job.inputs)
        no_emit: list[str] = []
        if job.provided:
            for direct in read_in(job.in_file, job.cwd):  # said in one line, before uv's resolver trace of it
                if (found := job.unprovidable(direct)) is not None:
                    raise PipelineError(*found)
            provided_file = Path(tmp) / "provided.txt"
            provided_file.write_text("".join(f"{pin}\n" for pin in job.provided))
            inputs.append(str(provided_file))
            no_emit, left_out = runtime_only_packages(job, flags, inputs, output, Path(tmp))
        _run_uv(job, flags, inputs, no_emit, output)
    if job.runtime and (notes := runtime_notes(job, left_out, read_lock(output))):
        output.write_text(output.read_text().rstrip("\n") + "\n\n" + "".join(f"{line}\n" for line in notes))
    return output


def runtime_notes(job: LockJob, left_out: dict[str, list[str]], lock: LockFile) -> list[str]:
    """The lock's last lines: each package the layer leaves to the runtime (at its version) or bundles instead."""
    shipped = shipped_packages(job.runtime)  # (name, version) of everything the runtime ships
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


def runtime_only_packages(
    job: LockJob, flags: list[str], inputs: list[str], output: Path, tmp: Path
) -> tuple[list[str], dict[str, list[str]]]:
    """Provided packages, the dependencies only they need (by a first resolve's `# via`), and what needs each. The
    probe upgrades what the real run upgrades, or a package only the old versions need would stay."""
    probe = tmp / "all.txt"
    if output.is_file():
        shutil.copyfile(output, probe)  # same preferences as the real run, so the same versions
    _run_uv(job, flags, inputs, [], probe)
    pins = read_lock(probe).pins
    provided = list(job.provided_versions)
    direct = {req.name for req in read_in(job.in_file, job.cwd)}
    source = f"-r {job.inputs[0]}"
    needed = {name for name, pin in pins.items() if source in pin.via or name in direct} - set(provided)
    while more := {name for name, pin in pins.items() if name not in provided and needed & set(pin.via)} - needed:
        needed |= more  # what the needed packages need, until nothing is added
    excluded: list[str] = []
    for name in provided:
        excluded.append(name)
        excluded += sorted(
            child
            for child, pin in pins.items()
            if name in pin.via and child not in needed and child not in provided and child not in excluded
        )
    left_out = {  # each left-out package the layer needs, and what needs it
        name: sorted(parents)
        for name in excluded
        if name in pins and (parents := [p.removeprefix("-r ") for p in pins[name].via if p in needed or p == source])
    }
    return excluded, left_out


def _run_uv(job: LockJob, flags: list[str], inputs: list[str], no_emit: list[str], output: Path) -> None:
    command = [uv_binary(), "pip", "compile", "--quiet", "--no-config", *inputs]
    command += ["--python-platform", job.python_platform, "--python-version", job.python_version]
    # The target is --python-version; the interpreter only builds an sdist's metadata. Without these, uv searches
    # PATH for the target's Python (every pyenv shim) and downloads an unhashed CPython from GitHub (docs/design.md).
    command += ["--python", sys.executable, "--no-python-downloads"]
    command += ["--only-binary", ":all:"] if job.only_binary else []
    command += [*flags, *(arg for name in no_emit for arg in ("--no-emit-package", name))]
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


@dataclass(frozen=True)
class LockChange:
    file: str
    added: list[str]
    removed: list[str]
    changed: list[str]
    rewritten: bool  # bytes differ (hashes or annotations), even with the same pins

    @classmethod
    def between(cls, file: str, before: dict[str, str | None], after: dict[str, str | None], rewritten: bool) -> Self:
        return cls(
            file,
            [f"{n}=={after[n]}" for n in sorted(after.keys() - before.keys())],
            [f"{n}=={before[n]}" for n in sorted(before.keys() - after.keys())],
            [f"{n} {before[n]} -> {after[n]}" for n in sorted(after.keys() & before.keys()) if before[n] != after[n]],
            rewritten,
        )

    def pins(self) -> str:
        """`+added==1, -removed==2, changed 1 -> 2`; "" when only hashes or annotations differ."""
        return ", ".join([*(f"+{p}" for p in self.added), *(f"-{p}" for p in self.removed), *self.changed])

    def describe(self) -> str:
        if not self.rewritten:
            return f"{self.file}: unchanged"
        return f"{self.file}: {self.pins() or 'same pins, hashes or annotations updated'}"


def compile_all(
    config: Config, upgrade: bool = False, upgrade_packages: tuple[str, ...] = (), uv_cache: Path | None = None
) -> list[LockChange]:
    bootstrap = config.lock.bootstrap_lock
    changes = []
    for job in [*lock_jobs(config), None]:  # None: the bootstrap file, written from the pipeline lock
        path = job.output if job else bootstrap
        before_bytes = path.read_bytes() if path.is_file() else b""
        before = read_lock(path).versions if before_bytes else {}
        if job is None:
            write_bootstrap(config.lock.pipeline_lock, bootstrap, config.root)
        else:
            compile_lock(
                job, config.lock.index_url, upgrade=upgrade, upgrade_packages=upgrade_packages, uv_cache=uv_cache
            )
        rewritten = path.read_bytes() != before_bytes
        changes.append(LockChange.between(display_path(path, config.root), before, read_lock(path).versions, rewritten))
    return changes


BOOTSTRAP_PACKAGE = "uv"
BOOTSTRAP_HEADER = (
    "# uv alone, at the version and with the hashes of {pipeline}: what creates the venvs\n"
    "# (ci/venv.py installs it with `pip install --require-hashes`). Written by `python -m ci lock`\n"
    "# from {pipeline}; never edit it by hand (`python -m ci lock --check` compares the two).\n"
)


def bootstrap_text(pipeline_lock: Path, root: Path) -> str:
    """The file's expected content: the pipeline lock's uv pin and every hash of it."""
    pin = read_lock(pipeline_lock).pins.get(BOOTSTRAP_PACKAGE)
    shown = display_path(pipeline_lock, root)
    if pin is None or pin.version is None or not pin.hashes:
        raise PipelineError(
            f"{shown} has no hashed `uv==` pin: the venvs cannot be bootstrapped from it",
            f"keep `uv` in {shown.replace('.txt', '.in')} and run {RELOCK}",
        )
    hashes = "".join(f" \\\n    --hash={digest}" for digest in sorted(pin.hashes))
    return BOOTSTRAP_HEADER.format(pipeline=pipeline_lock.name) + f"{BOOTSTRAP_PACKAGE}=={pin.version}{hashes}\n"


def write_bootstrap(pipeline_lock: Path, bootstrap_lock: Path, root: Path) -> bool:
    text = bootstrap_text(pipeline_lock, root)
    changed = not bootstrap_lock.is_file() or bootstrap_lock.read_text() != text
    if changed:
        bootstrap_lock.write_text(text)
    return changed


POLICY_DIR = Path(__file__).resolve().parent.parent / "policy"
ARCHITECTURE = "x86_64"  # the pins hold the hashes of every file, so one resolve serves both architectures
INPUT_NAME = "runtime.in"  # how the files' `# via -r` annotations name the provided list


def runtime_file(runtime: str) -> Path:
    return POLICY_DIR / f"runtime-{runtime}.txt"


def header(policy: RuntimePolicy) -> str:
    return (
        f"# What the managed {policy.name} runtime provides in /var/runtime (ci/policy/lambda_runtimes.json\n"
        '# "provided" and their dependencies), with hashes: the smoke harness installs exactly this, never the layer.\n'
        f"# Generated by `python -m ci lock --runtime-packages` for Python {policy.python}, "
        f"{policy.uv_platform[ARCHITECTURE]}, wheels only. Do not edit.\n"
    )


def generate(policy: RuntimePolicy, index_url: str, output: Path, uv_cache: Path | None = None) -> bool:
    """Write `output` for `policy` (its current pins preferred); True if the bytes changed."""
    before = output.read_bytes() if output.is_file() else b""
    with tempfile.TemporaryDirectory(prefix="runtime-packages-") as tmp:
        cwd = Path(tmp)
        (cwd / INPUT_NAME).write_text("".join(f"{pin}\n" for pin in policy.provided))
        resolved = cwd / "resolved.txt"
        if output.is_file():
            shutil.copyfile(output, resolved)  # uv prefers the pins already there
        platform = policy.uv_platform[ARCHITECTURE]
        job = LockJob(f"runtime-{policy.name}", cwd, (INPUT_NAME,), resolved, platform, policy.python, only_binary=True)
        compile_lock(replace(job, extra_args=("--no-header",)), index_url, uv_cache=uv_cache)  # header(policy) is ours
        text = header(policy) + resolved.read_text()
    output.write_text(text)  # never a header-less file, even if uv is killed half-way
    return text.encode() != before
