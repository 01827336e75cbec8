"""The model precondition: no process of the pipeline loads a model that `ci pins` would refuse.

Every path that loads a model first scans the bytes, then loads them only under the digest of exactly those
bytes, so a file swapped after the scan fails the handler's digest check instead of being unpickled.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from pathlib import Path

from ci.config import Config
from ci.errors import CheckFailedError, PipelineError
from ci.lock.lockfile import LockFile
from ci.pins.container import read_container
from ci.pins.locks import pinned_version
from ci.pins.policy import ALLOW_LIST, PACKAGES, distribution_of, judge, model_allow_list
from ci.pins.result import Finding
from ci.pins.scan import PickleScan, scan_stream

NEVER_LOAD = "never load or deploy this artifact: retrain it (`python -m training`) and check where it came from"


# Standard-library helpers an ordinary pickle of another library version uses (numpy 2 spells bytes so).
PICKLE_HELPERS = ("_codecs", "copyreg")


class UnsafeModelError(CheckFailedError):
    """The static scan refuses the model: nothing may unpickle it."""


def allowed_distributions(layer: LockFile | None) -> set[str]:
    """The model's libraries the runtime ships (all of them when no lock is at hand)."""
    if layer is None:
        return set(PACKAGES.values())
    return {dist for dist in PACKAGES.values() if layer.get(dist) is not None}


def refusals(scan: PickleScan, allowed: Collection[str], runtime_sklearn: str | None = None) -> list[Finding]:
    """What makes a scanned pickle unsafe to load: a name outside the allow-list, or a part the scan cannot read.

    `runtime_sklearn`: the layer's scikit-learn; a model whose estimators recorded another version
    names other classes, and is reported as version drift rather than as a foreign artifact.
    """
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
    """Scan `model` statically; return the sha256 of the bytes scanned, or raise UnsafeModelError.

    `layer_lock`: the runtime lock, whose distributions a reference may come from (as in `ci pins`).
    """
    try:
        raw = model.read_bytes()
    except OSError as exc:
        raise PipelineError(f"model {model} cannot be read ({exc})", "train it: `python -m training`") from exc
    layer = _read_lock(layer_lock)
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


def _read_lock(path: Path | None) -> LockFile | None:
    if path is None or not path.is_file():
        return None
    from ci.pins.locks import read_lock

    return read_lock(path)
