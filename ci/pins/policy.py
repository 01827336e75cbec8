"""Which references a model pickle may contain: exactly the pairs of handler/model_globals.txt.

The same allow-list the loader on Lambda enforces, and only for distributions the runtime lock ships.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from ci.errors import PipelineError
from handler.model_globals import ALLOWED_GLOBALS_FILE, AllowListError, allowed_globals

# Top-level module -> the distribution that installs it.
PACKAGES: dict[str, str] = {
    "sklearn": "scikit-learn",
    "numpy": "numpy",
    "scipy": "scipy",
    "joblib": "joblib",
    "pandas": "pandas",
}
ALLOW_LIST = "handler/model_globals.txt"


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str = ""


def distribution_of(module: str) -> str | None:
    return PACKAGES.get(module.split(".", 1)[0])


def model_allow_list() -> frozenset[tuple[str, str]]:
    """The committed allow-list; a malformed file stops the pipeline rather than widening anything."""
    try:
        return allowed_globals(ALLOWED_GLOBALS_FILE)
    except AllowListError as exc:
        raise PipelineError(str(exc), f"every line of {ALLOW_LIST} is 'module qualname'") from exc


def judge(
    module: str, name: str, allowed_packages: Collection[str], allowed: frozenset[tuple[str, str]] | None = None
) -> Verdict:
    """Is `module name` acceptable in a model pickle, given the distributions the runtime ships?"""
    if (module, name) not in (model_allow_list() if allowed is None else allowed):
        return Verdict(False, f"'{module} {name}' is not in {ALLOW_LIST}, the exact globals a model may reference")
    dist = distribution_of(module)
    if dist is not None and dist not in allowed_packages:
        return Verdict(False, f"{dist} is not in the runtime lock, so the runtime cannot import {module}")
    return Verdict(True)
