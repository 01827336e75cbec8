"""What Lambda's Python sees: the function, the layer, then the runtime's own packages (one cached copy of their pins),
in the runtime's order and nothing of this host (docs/design.md, "The runtime view")."""

import functools
import hashlib
import importlib.metadata
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from ci.config import Config, RuntimePolicy
from ci.errors import ConfigError, PipelineError
from ci.lock.resolve import runtime_file
from ci.paths import BuildPaths
from ci.pip import run_pip, target_options


def ensure_runtime_dir(config: Config, paths: BuildPaths) -> Path:
    """The runtime's own packages, installed once into the cache, in a directory named by their hashed pins."""
    pins = runtime_file(config.target.runtime.name)
    if not pins.is_file():
        raise ConfigError(
            f"{pins} not found: no hashed pins for what {config.target.runtime.name} provides",
            "generate it with `python -m ci lock --runtime-packages` (from lambda_runtimes.json's provided list)",
        )
    index_url = config.lock.index_url
    options = "\0".join(target_options(config.target))
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


def lambda_sys_path(policy: RuntimePolicy, places: Mapping[str, Path | None]) -> list[Path]:
    """The runtime's documented sys.path, filled in; a place given as None is left out."""
    filled = [(entry, entry.split("}", 1)[0].removeprefix("{")) for entry in policy.sys_path]  # "{opt}/python"
    return [Path(entry.format(**{place: places[place]})) for entry, place in filled if places.get(place) is not None]


@dataclass(frozen=True)
class RuntimeView:
    """The layer as Lambda mounts it, with the runtime's packages behind it: what build's checks import from."""

    policy: RuntimePolicy
    packages: Path  # the installed /var/runtime equivalent (ensure_runtime_dir)

    def behind(self, site: Path) -> list[Path]:
        path = lambda_sys_path(self.policy, {"task": None, "opt": site.parent, "runtime": self.packages})
        return path[path.index(site) + 1 :]

    def owner(self, module: str) -> tuple[str, str] | None:
        return _top_levels(self.packages).get(module.split(".")[0])


@functools.cache
def _top_levels(packages: Path) -> dict[str, tuple[str, str]]:
    """Top-level name -> (distribution, version) of every package installed in `packages` (from RECORD)."""
    found: dict[str, tuple[str, str]] = {}
    for dist in importlib.metadata.distributions(path=[str(packages)]):
        for file in dist.files or ():
            top = file.parts[0]
            name = top.split(".")[0]  # pkg, module.py, _ext.cpython-311-x86_64-linux-gnu.so
            if not top.endswith((".dist-info", ".data")) and name.isidentifier() and name != "__pycache__":
                found.setdefault(name, (canonicalize_name(dist.metadata["Name"]), dist.version))
    return found
