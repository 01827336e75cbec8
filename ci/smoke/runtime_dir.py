"""The /var/runtime equivalent: only what the managed runtime ships (awslambdaric, boto3, botocore...).

Installed once per pin set into build/cache/runtime-<runtime>-<hash>/ from the hashed pins in
ci/policy/runtime-<runtime>.txt (the hash covers the pins, the index and the target's wheel options),
so a handler that imports boto3 finds the runtime's version and a layer that forgot a dependency is
not rescued by anything of this host.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from ci.config import Config
from ci.errors import ConfigError, PipelineError
from ci.paths import BuildPaths
from ci.pip import run_pip, target_options

POLICY_DIR = Path(__file__).resolve().parent.parent / "policy"


def runtime_pins(config: Config) -> Path:
    pins = POLICY_DIR / f"runtime-{config.target.runtime.name}.txt"
    if not pins.is_file():
        raise ConfigError(
            f"{pins} not found: no hashed pins for what {config.target.runtime.name} provides",
            "generate it with `python -m ci lock --runtime-packages` (from lambda_runtimes.json's provided list)",
        )
    return pins


def ensure_runtime_dir(config: Config, paths: BuildPaths) -> Path:
    """Install the runtime's own packages into the cache (once) and return that directory."""
    pins = runtime_pins(config)
    index_url = config.lock.index_url
    options = "\0".join([index_url, *target_options(config.target)])
    digest = hashlib.sha256(pins.read_bytes() + b"\0" + options.encode()).hexdigest()[:16]
    target = paths.cache / f"runtime-{config.target.runtime.name}-{digest}"
    if (target / "awslambdaric").is_dir():
        return target
    staging = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    result = run_pip(
        "install", config.target, index_url, "--target", str(staging), "--require-hashes", "--no-deps",
        "--no-compile", "-r", str(pins),
    )  # fmt: skip
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise PipelineError(
            f"could not install the {config.target.runtime.name} runtime's packages from {pins.name}:\n"
            + result.stderr.strip()[-2000:],
            f"check network access to {index_url}, or regenerate the pins",
        )
    try:
        staging.rename(target)
    except OSError:  # another run installed it meanwhile: same pins, same content
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / "awslambdaric").is_dir():
            raise
    return target
