"""The model precondition: no process of the pipeline loads a model that `ci pins` would refuse.

A pickle may reference only handler/model_globals.txt's pairs from distributions the layer lock pins; a model is
loaded only under the digest of exactly the bytes scanned.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from ci.config import Config
from ci.errors import CheckFailedError, PipelineError
from ci.lock import lockfile
from ci.lock.lockfile import LockFile, Pin
from ci.pins.scan import PickleScan, read_container, scan_stream
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


def read_lock(path: Path, display: str | None = None) -> LockFile:
    """Read `path`; raise PipelineError if it is missing or a line is not a requirement."""
    display = display or path.name
    if not path.is_file():
        raise PipelineError(f"{display} not found ({path})", "run `python -m ci lock` to write the locks")
    lock = lockfile.read_lock(path, display)
    for pin in lock.entries:
        if pin.requirement is None:
            raise PipelineError(
                f"{display}:{pin.line}: {pin.text!r} is not a requirement ({pin.error})",
                "regenerate the lock with `python -m ci lock`",
            )
    return lock


def pinned_version(pin: Pin | None) -> str | None:
    """The exact version when the entry is a single `==` pin without wildcard, else None."""
    return pin.version if pin is not None and pin.operator == "==" else None


def why_not_pinned(pin: Pin) -> str:
    specifiers = pin.specifiers
    if not specifiers:
        return "is not pinned (no version)" if not pin.url else f"is a URL ({pin.url}), not a version pin"
    if any("*" in item.version for item in specifiers):
        return f"uses a wildcard ({pin.specifier}), not an exact `==` pin"
    operators = ", ".join(f"`{op}`" for op in sorted({item.operator for item in specifiers}))
    return f"uses {operators} ({pin.specifier}), not an exact `==` pin"


NEVER_LOAD = "never load or deploy this artifact: retrain it (`python -m training`) and check where it came from"


# Standard-library helpers an ordinary pickle of another library version uses (numpy 2 spells bytes so).
PICKLE_HELPERS = ("_codecs", "copyreg")


@dataclass
class Finding:
    severity: str  # error | warning | note
    message: str
    fix: str = ""
    file: str | None = None  # repository-relative lock the finding is about, and its 1-based line
    line: int | None = None


class UnsafeModelError(CheckFailedError):
    """The static scan refuses the model: nothing may unpickle it."""


def allowed_distributions(layer: LockFile | None) -> set[str]:
    """The model's libraries the runtime ships (all of them when no lock is at hand)."""
    if layer is None:
        return set(PACKAGES.values())
    return {dist for dist in PACKAGES.values() if layer.get(dist) is not None}


def refusals(scan: PickleScan, allowed: Collection[str], runtime_sklearn: str | None = None) -> list[Finding]:
    """A name outside the allow-list or an unreadable part; with another `runtime_sklearn`, reported as drift."""
    recorded = sorted(set(scan.versions_of_sklearn()) - {runtime_sklearn}) if runtime_sklearn else []
    found = []
    for ref in sorted(scan.references.values(), key=lambda r: r.path):
        verdict = judge(ref.module, ref.name, set(allowed))
        if verdict.allowed:
            continue
        how = "called when the pickle is loaded" if ref.called else "imported when the pickle is loaded"
        via = f" via {ref.via}" if ref.via else ""
        ordinary = (
            distribution_of(ref.module) is not None or ref.module in PICKLE_HELPERS or _sklearn_relative(ref.module)
        )
        if recorded and ordinary and (ref.module, ref.name) not in model_allow_list():
            trained = ", ".join(recorded)
            found.append(
                Finding(
                    "error",
                    f"references {ref.path}{via} ({how}), not in {ALLOW_LIST}: the model was pickled by "
                    f"scikit-learn {trained} and the runtime has scikit-learn {runtime_sklearn} (version drift)",
                    f"retrain with the runtime's versions (`python -m training` in the training lock's environment), "
                    f"or move the layer's pin to {trained} (`python -m ci lock --upgrade scikit-learn`) and retrain",
                )
            )
            continue
        found.append(
            Finding(
                "error",
                f"references {ref.path}{via} ({how}): not allowed — {verdict.reason}",
                "never deploy this artifact: rebuild it from the training code and check where it came from",
            )
        )
    for item in scan.unresolved:
        found.append(
            Finding("error", f"cannot be read statically: {item}", "never deploy this artifact; retrain the model")
        )
    return found


def _sklearn_relative(module: str) -> bool:
    """scikit-learn >= 1.4's Cython classes pickle a package-relative module ("_loss" for sklearn._loss)."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    top = module.split(".", 1)[0]
    if spec is None or spec.origin is None or not top.startswith("_"):
        return False
    package = Path(spec.origin).parent
    return (package / top).is_dir() or any(package.glob(f"{top}.*"))


def require_safe_model(model: Path, layer_lock: Path | None = None) -> str:
    """Scan `model` statically; the sha256 of the bytes scanned, or UnsafeModelError."""
    try:
        raw = model.read_bytes()
    except OSError as exc:
        raise PipelineError(f"model {model} cannot be read ({exc})", "train it: `python -m training`") from exc
    layer = read_lock(layer_lock) if layer_lock is not None and layer_lock.is_file() else None
    try:
        scan = scan_stream(read_container(model, raw).stream)
    except PipelineError as exc:
        raise UnsafeModelError(f"model {model} refused by the static scan: {exc.problem}", NEVER_LOAD) from exc
    runtime_sklearn = pinned_version(layer.get("scikit-learn")) if layer is not None else None
    found = refusals(scan, allowed_distributions(layer), runtime_sklearn)
    if found:
        more = f" (and {len(found) - 1} more; `python -m ci pins` lists them)" if len(found) > 1 else ""
        raise UnsafeModelError(f"model {model} refused by the static scan: {found[0].message}{more}", NEVER_LOAD)
    return hashlib.sha256(raw).hexdigest()


def model_precondition(config: Config, model: Path) -> str:
    """require_safe_model against the configured layer lock; the digest to load the model under."""
    return require_safe_model(model, config.lock.layer_lock)
