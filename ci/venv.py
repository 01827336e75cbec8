"""`python3 -m ci.venv [--dev]`: .venv/ in seconds, from the hashed locks, with the target's Python.
uv (bootstrapped from its hashed pin) syncs the locks, wheels only; this runs before .venv exists: stdlib only."""

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from ci.errors import PipelineError
from ci.paths import LOCK_FILE_DEFAULTS, REPO_ROOT
from ci.python import config_table, find_python, runtime_python, venv_version, version_of

LOCK_KEYS = {  # the [lock] keys read here, with the defaults of an older pipeline.toml that lacks them
    **LOCK_FILE_DEFAULTS,
    "requirements_in": "requirements.in",
    "dev_lock": "requirements-dev.txt",
    "index_url": "https://pypi.org/simple",
}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)
UNFIT = re.compile(r"Because ([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+) has no (?:usable )?wheels")
UPGRADE_DOC = "docs/runtimes.md#upgrading-scikit-learn-for-a-newer-runtime"
Resolve = Callable[..., subprocess.CompletedProcess[str]]  # uv pip compile of requirements text, extra options


def lock_settings(config_file: Path) -> dict[str, str]:
    table = config_table(config_file, "lock")
    return {key: str(table.get(key, default)) for key, default in LOCK_KEYS.items()}


def bootstrap_uv(bootstrap_lock: Path, python: str, cache: Path) -> Path:
    if not bootstrap_lock.is_file():
        raise PipelineError(f"{bootstrap_lock} not found", "run `python -m ci lock` (it writes it) or restore it")
    digest = hashlib.sha256(bootstrap_lock.read_bytes()).hexdigest()[:16]
    home = cache / "bootstrap" / f"uv-{digest}"
    uv = home / "bin" / "uv"
    if uv.is_file():
        return uv
    staging = home.with_name(f"{home.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    command = [
        python, "-m", "pip", "install", "--isolated", "--disable-pip-version-check", "--quiet",
        "--require-hashes", "--no-deps", "--only-binary", ":all:", "--target", str(staging), "-r", str(bootstrap_lock),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not (staging / "bin" / "uv").is_file():
        shutil.rmtree(staging, ignore_errors=True)
        raise PipelineError(
            f"could not install uv from {bootstrap_lock.name} with {python} -m pip: "
            + (result.stderr.strip().splitlines() or ["no uv binary in the wheel"])[-1],
            "check network access to PyPI and that this Python has pip (`python -m ensurepip`)",
        )
    try:
        staging.rename(home)
    except OSError:  # another run bootstrapped the same pin meanwhile
        shutil.rmtree(staging, ignore_errors=True)
    return uv


def create(config_file: Path, venv: Path, dev: bool, python: str | None, cache: Path) -> None:
    version = runtime_python(config_file)
    python = python or find_python(version)
    found = version_of(python)
    if found != version:  # a PYTHON given that is not the target's
        raise PipelineError(
            f"{python} is Python {found or '(does not run)'}, pipeline.toml targets {version}",
            f"PYTHON=/path/to/python{version}",
        )
    settings = lock_settings(config_file)
    root = config_file.parent
    locks = [root / settings["pipeline_lock"]] + ([root / settings["dev_lock"]] if dev else [])  # synced together
    for lock in locks:
        if not lock.is_file():
            raise PipelineError(f"{lock} not found", "run `python -m ci lock` or restore it from git")
    uv = bootstrap_uv(root / settings["bootstrap_lock"], python, cache)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PIP_", "VIRTUAL_ENV"))}

    def resolve(requirements: str, *extra: str) -> subprocess.CompletedProcess[str]:
        command = [
            str(uv), "pip", "compile", "-", "--quiet", "--no-config", "--no-header", "--no-deps", "--only-binary",
            ":all:", "--index-url", settings["index_url"], "--python", python, "--no-python-downloads", *extra,
        ]  # fmt: skip
        return subprocess.run(command, input=requirements, capture_output=True, text=True, env=env, check=False)

    check_wheels(resolve, locks, root / settings["requirements_in"], version)  # before any download
    existing = venv_version(venv)
    if existing is not None and existing != version:
        print(f"recreating {venv}: made by Python {existing}, the target needs {version}")
        shutil.rmtree(venv)
    if not (venv / "bin" / "python").exists():
        _run([str(uv), "venv", "--quiet", "--no-config", "--python", python, str(venv)], env)
    print(
        f"{venv}: uv pip sync --require-hashes {' + '.join(lock.name for lock in locks)} (Python {version}, {python})"
    )
    _run(
        [
            str(uv), "pip", "sync", "--quiet", "--no-config", "--require-hashes", "--only-binary", ":all:",
            "--index-url", settings["index_url"], "--python", str(venv / "bin" / "python"), *map(str, locks),
        ],
        env,
    )  # fmt: skip
    # The repository on the venv's sys.path, so `python -m ci` works from any directory.
    (venv / "lib" / f"python{version}" / "site-packages" / "repository.pth").write_text(f"{root.resolve()}\n")


def check_wheels(resolve: Resolve, locks: list[Path], requirements_in: Path, target_version: str) -> None:
    """Refuse, before any download, a pin without a wheel for the target's Python: it would build from source."""
    pins = dict.fromkeys(f"{name}=={version}" for lock in locks for name, version in PIN.findall(lock.read_text()))
    unfit: list[tuple[str, str]] = []
    while pins and len(unfit) < 20:  # pins reported at most; each needs one resolve (~0.5 s)
        result = resolve("\n".join(pins) + "\n", "--output-file", os.devnull)
        found = UNFIT.search(result.stderr) if result.returncode else None
        if found is None:  # resolved, or not a missing wheel (the index is unreachable, say): sync reports that
            break
        name, version = found.groups()
        unfit.append((name, version))
        pins = {pin: None for pin in pins if pin.split("==")[0].lower() != name.lower()}
    if not unfit:
        return
    text = requirements_in.read_text() if requirements_in.is_file() else ""
    direct = {name.lower() for name, _ in PIN.findall(text)}
    unfit.sort(key=lambda pin: pin[0].lower() not in direct)  # the pins a person moves first
    described, moves = [], []
    for name, version in unfit:
        result = resolve(f"{name}>{version}\n", "--resolution", "lowest")  # the oldest release with a wheel
        found = PIN.search(result.stdout) if result.returncode == 0 else None
        oldest = found.group(2) if found else None
        where = f"{requirements_in.name} pins" if name.lower() in direct else "the locks pin"
        fits = f"the oldest {name} with one is {oldest}" if oldest else f"no {name} release has one"
        described.append(f"{where} {name}=={version}: no wheel for Python {target_version}; {fits}")
        if name.lower() in direct:
            moves.append(f"{name}=={oldest or '?'}")
    first = f"pin {', '.join(moves)} (or newer) in {requirements_in.name} and training/requirements.in, then "
    raise PipelineError(
        f"[target] runtime needs Python {target_version}, which cannot install these locks, and nothing here is "
        f"built from source: {'; '.join(described)}",
        f"move the locks first: {first if moves else ''}`.venv/bin/python -m ci lock` (an existing .venv of any "
        f"Python locks for the runtime pipeline.toml names), then `make pipeline` ({UPGRADE_DOC}); "
        "or keep the previous runtime",
    )


def _run(command: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        raise PipelineError(
            f"`{' '.join(command[1:4])} ...` failed: {detail.splitlines()[-1] if detail else 'no output'}",
            "a hash mismatch means the download is not what the lock pinned (never edit a lock by hand: "
            "`python -m ci lock`); otherwise check network access, or remove .venv and rerun",
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m ci.venv", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--dev", action="store_true", help="also the dev tools lock (make test)")
    parser.add_argument("--venv", type=Path, default=REPO_ROOT / ".venv", help="default: .venv")
    parser.add_argument("--python", default=None, help="the interpreter (default: found by ci.python)")
    parser.add_argument("--config", type=Path, default=REPO_ROOT / "pipeline.toml", help="default: pipeline.toml")
    parser.add_argument("--cache-dir", type=Path, default=REPO_ROOT / "build" / "cache", help="default: build/cache")
    args = parser.parse_args(argv)
    try:
        create(args.config, args.venv, args.dev, args.python or None, args.cache_dir)
    except PipelineError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
