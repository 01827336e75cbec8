"""`python3 -m ci.python`: which Python the build host uses, derived from pipeline.toml's [target] runtime.
The model must be pickled by the version that unpickles it; this runs before .venv exists: standard library only."""

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ci.errors import PipelineError
from ci.paths import POLICY_FILE, REPO_ROOT


def config_table(config_file: Path, section: str) -> dict[str, Any]:
    """[section] unchecked (ci.config checks); a Python before 3.11 (no tomllib) reads its key = "value" lines."""
    text = config_file.read_text()
    try:
        import tomllib
    except ImportError:
        found = re.search(rf"^\[{section}\](.*?)(?=^\[|\Z)", text, re.MULTILINE | re.DOTALL)
        return dict(re.findall(r'^\s*(\w+)\s*=\s*"([^"]*)"', found.group(1), re.MULTILINE)) if found else {}
    table = tomllib.loads(text).get(section, {})
    return table if isinstance(table, dict) else {}


def runtime_python(config_file: Path) -> str:
    runtime = config_table(config_file, "target").get("runtime")
    if not isinstance(runtime, str):
        raise PipelineError(f"{config_file}: [target] runtime is missing", 'set runtime = "python3.11" in [target]')
    policies = {name: facts for name, facts in json.loads(POLICY_FILE.read_text()).items() if not name.startswith("_")}
    if runtime not in policies:
        raise PipelineError(
            f"{config_file}: [target] runtime = {runtime!r} is not a known Lambda runtime",
            f"use one of {', '.join(sorted(policies))} (ci/policy/lambda_runtimes.json)",
        )
    return str(policies[runtime]["python"])


def version_of(python: str) -> str | None:
    """ "3.12" if `python` runs and says so; None if it does not run (e.g. a pyenv shim of another version)."""
    probe = "import sys; print('%d.%d' % sys.version_info[:2])"
    try:
        result = subprocess.run([python, "-I", "-c", probe], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def candidates(version: str) -> Iterator[str]:
    """Where a Python `version` may be, in order: this interpreter, PATH, uv's discovery, pyenv's versions."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        yield getattr(sys, "_base_executable", None) or sys.executable
    roots = (os.environ.get("PYENV_ROOT", ""), str(Path.home() / ".pyenv"))  # what `pyenv root` answers
    pyenv_roots = [root for root in dict.fromkeys(roots) if root and Path(root, "versions").is_dir()]
    # pyenv's shims are skipped: each takes ~0.2 s to answer for one version; the versions behind them come last.
    shims = [str(Path(root, "shims")) for root in pyenv_roots]
    for name in (f"python{version}", "python3"):
        for directory in os.environ.get("PATH", "").split(os.pathsep):
            found = shutil.which(name, path=directory) if directory and directory not in shims else None
            if found:
                yield found
    uv = _uv()
    if uv is not None:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            result = subprocess.run(
                [uv, "python", "find", "--no-project", "--no-python-downloads", version],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            if result.returncode == 0 and result.stdout.strip():
                yield result.stdout.strip()
    for root in pyenv_roots:
        installed = Path(root, "versions").glob(f"{version}.*/bin/python{version}")
        yield from sorted((str(path) for path in installed), key=_patch_level, reverse=True)


def find_python(version: str) -> str:
    seen: set[str] = set()
    for candidate in candidates(version):
        if candidate not in seen and version_of(candidate) == version:
            return candidate
        seen.add(candidate)
    raise PipelineError(
        f"no Python {version} found (looked on PATH for python{version}, with `uv python find {version}` and in "
        "pyenv's versions); the target runtime in pipeline.toml needs it",
        f"install it (`uv python install {version}`, `pyenv install {version}` or actions/setup-python) "
        f"or pass PYTHON=/path/to/python{version} to make",
    )


def venv_version(venv: Path) -> str | None:
    cfg = venv / "pyvenv.cfg"  # None: no venv there
    found = re.search(r"^version(?:_info)?\s*=\s*(\d+\.\d+)", cfg.read_text(), re.MULTILINE) if cfg.is_file() else None
    return found.group(1) if found else None


def _uv() -> str | None:
    local = Path(sys.prefix) / "bin" / "uv"
    return str(local) if local.is_file() else shutil.which("uv")


def _patch_level(path: str) -> tuple[int, ...]:
    match = re.search(r"/versions/(\d+)\.(\d+)\.(\d+)/", path)
    return tuple(int(part) for part in match.groups()) if match else (0,)


def missing_module(command: str, exc: ModuleNotFoundError) -> PipelineError:
    venv = REPO_ROOT / ".venv"
    if Path(sys.prefix).resolve() == venv.resolve():
        where = f"the project's environment {venv} lacks it: it is out of date with its locks"
        fix = "run `make venv` (or `make venv-dev` for the test tools), then rerun it"
    else:
        where = f"{sys.executable} is not the project's environment ({venv})"
        fix = f"run `{venv}/bin/python -m {command}` (`make venv` creates it; `make pipeline` runs every step)"
    return PipelineError(f"`python -m {command}` needs the module {exc.name!r}: {where}", fix)


def repository_of(directory: Path) -> Path | None:
    """The repository holding `directory`: the nearest parent with pipeline.toml and ci/, as git finds .git."""
    for candidate in (directory, *directory.parents):
        if (candidate / "pipeline.toml").is_file() and (candidate / "ci" / "__init__.py").is_file():
            return candidate
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python3 -m ci.python", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO_ROOT / "pipeline.toml", help="default: pipeline.toml")
    parser.add_argument("--version", action="store_true", help="print the target's Python version (e.g. 3.12)")
    parser.add_argument(
        "--github-output", action="store_true", help="with --version: also append python=X.Y to $GITHUB_OUTPUT"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        version = runtime_python(args.config)
        if args.version:
            print(version)
            if args.github_output and os.environ.get("GITHUB_OUTPUT"):
                with Path(os.environ["GITHUB_OUTPUT"]).open("a", encoding="utf-8") as handle:
                    handle.write(f"python={version}\n")
        else:
            print(find_python(version))
    except PipelineError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
