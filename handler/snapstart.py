"""Lambda SnapStart hooks: the snapshot holds a loaded, warmed model; every restored copy re-seeds and re-checks.

One snapshot is restored into many environments, so randomness is re-seeded and the model re-checked against
MODEL_SHA256 after a restore; without `snapshot_restore_py` nothing is registered.
"""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

from handler import model_store, predict, telemetry
from handler.errors import ModelLoadError
from handler.settings import model_source


def register() -> bool:
    """Register the hooks with the runtime; False where the runtime has no snapshot_restore_py."""
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot
    except ImportError:
        return False
    register_before_snapshot(before_snapshot)
    register_after_restore(after_restore)
    return True


def before_snapshot() -> None:
    """Load and exercise the model now, so the snapshot carries it (and its first-call imports) warm."""
    model = model_store.get_model()
    predict.warm_up(model)
    telemetry.log_event("before-snapshot", model_sha256=model.label["sha256"])


def after_restore() -> None:
    """Fresh randomness for this environment, and the restored model still the one meant to be deployed."""
    reseed()
    model = model_store.get_model()
    recheck(model)
    telemetry.log_event("after-restore", model_sha256=model.label["sha256"])


def reseed() -> None:
    random.seed(os.urandom(32))
    import numpy as np

    np.random.seed(int.from_bytes(os.urandom(4), "little"))


def recheck(model: model_store.LoadedModel) -> None:
    """Raise ModelLoadError unless the model's digest is MODEL_SHA256's and, for a local file, the file's."""
    source = model_source()
    if source.sha256 is not None and model.sha256 != source.sha256:
        raise ModelLoadError(f"after restore: the model in memory is {model.sha256}, MODEL_SHA256 is {source.sha256}")
    if source.path:
        on_disk = hashlib.sha256(Path(source.path).read_bytes()).hexdigest()
        if on_disk != model.sha256:
            raise ModelLoadError(
                f"after restore: {source.path} hashes to {on_disk}, the model in memory to {model.sha256}; "
                "redeploy the model.joblib whose hash model.json records"
            )
