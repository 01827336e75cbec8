"""Resolve requirements.in plus the request exactly as `ci lock` would, into a lock of its own.

Same resolver, target and runtime-provided pins, current pins preferred, so a pin moves only when the
request forces it; the committed lock is never written (the output lives under build/what-if/).
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

from ci.budget.what_if_specs import WhatIfRequest, write_in_file
from ci.budget.wheel_reasons import Unfit, why_not_newest, why_unfit
from ci.config import Config
from ci.errors import CheckFailedError, PipelineError
from ci.layer.wheels import read_layer_lock
from ci.lock.index import SimpleIndex
from ci.lock.lockfile import LockFile
from ci.lock.resolve import compile_lock, lock_jobs
from ci.paths import BuildPaths

DEFAULT_INDEX = "https://pypi.org/simple"
UV_DETAIL_LINES = 8


@dataclass(frozen=True)
class Move:
    """An existing pin the resolver had to change to fit the request."""

    name: str
    before: str
    after: str
    required_by: tuple[str, ...]  # `# via` of the new lock


class UnresolvableError(CheckFailedError):
    """No lock satisfies requirements.in plus the request for this target; `unfit` says why, per package."""

    def __init__(self, problem: str, fix: str, unfit: list[Unfit]) -> None:
        super().__init__(problem, fix)
        self.unfit = unfit


def index_for(config: Config, paths: BuildPaths) -> SimpleIndex:
    """The configured index; PyPI's answers share `ci lock`'s cache, any other index gets its own."""
    url = config.lock.index_url
    if url.rstrip("/") == DEFAULT_INDEX:
        return SimpleIndex(url, paths.cache / "pypi-simple")
    return SimpleIndex(url, paths.cache / "index" / hashlib.sha256(url.encode()).hexdigest()[:16])


def resolve(config: Config, paths: BuildPaths, request: WhatIfRequest, workdir: Path) -> LockFile:
    """The what-if lock (workdir/requirements-layer.txt), read as strictly as the build reads its own."""
    job = lock_jobs(config)[0]
    in_file = write_in_file(workdir, config.lock.requirements_in, request)
    output = workdir / "requirements-layer.txt"
    shutil.copyfile(config.lock.layer_lock, output)  # the current pins, preferred by the resolver
    what_if = dataclasses.replace(job, cwd=workdir, inputs=(in_file.name,), output=output)
    try:
        compile_lock(what_if, config.lock.index_url, uv_cache=paths.cache / "uv")
    except PipelineError as exc:
        raise _explained(exc, config, paths, request) from None
    return read_layer_lock(output)


def _explained(exc: PipelineError, config: Config, paths: BuildPaths, request: WhatIfRequest) -> PipelineError:
    index = index_for(config, paths)
    unfit = [found for req in request.requirements if (found := why_unfit(req, index, config.target)) is not None]
    if unfit:
        return UnresolvableError(
            "\n".join(item.message for item in unfit), "; ".join(f"{item.name}: {item.fix}" for item in unfit), unfit
        )
    detail = "\n".join(exc.problem.splitlines()[1 : 1 + UV_DETAIL_LINES])
    return UnresolvableError(
        f"requirements.in + {request.describe()} has no solution for {config.target.runtime.name} "
        f"{config.target.architecture}:\n{detail}",
        "loosen the requirement uv names (or the one in requirements.in it conflicts with), then ask again",
        [],
    )


def moved_pins(current: LockFile, projected: LockFile) -> list[Move]:
    """Pins of the current lock whose version the what-if lock changes."""
    moves = []
    for name, pin in sorted(current.pins.items()):
        after = projected.pins.get(name)
        if after is not None and after.version != pin.version:
            moves.append(Move(name, str(pin.version), str(after.version), tuple(after.via)))
    return moves


def held_back(config: Config, paths: BuildPaths, request: WhatIfRequest, projected: LockFile) -> list[str]:
    """For each requested package the resolve settled below the newest release of: why, if for the target."""
    index = index_for(config, paths)
    notes = []
    for name in request.names:
        pin = projected.pins.get(name)
        if pin is not None and pin.version is not None:
            note = why_not_newest(name, pin.version, index, config.target)
            if note:
                notes.append(note)
    return notes
