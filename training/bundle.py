"""The model bundle and its manifest, written byte-for-byte reproducibly and atomically.

model.joblib holds {"sklearn_model", "feature_names", "metadata"}; model.json's fields: docs/model.md.
Nothing time- or path-dependent goes in, and files are renamed into place, so a reader never sees half a model.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import joblib

ARTIFACT = "model.joblib"
MANIFEST = "model.json"
VERSIONED = ["scikit-learn", "numpy", "scipy", "joblib", "pandas"]


def versions() -> dict[str, str]:
    """The interpreter and libraries that pickled the model; the runtime must match them."""
    found = {"python": platform.python_version()}
    found.update({name: importlib_metadata.version(name) for name in VERSIONED})
    return found


def dump_bytes(bundle: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(bundle, buffer)
    return buffer.getvalue()


def manifest(
    artifact: bytes,
    training_data_sha256: str,
    seed: int,
    feature_names: list[str],
    metrics: dict[str, Any],
    checks: dict[str, Any],
    answers: dict[str, Any],
) -> dict[str, Any]:
    return {
        "artifact": ARTIFACT,
        "sha256": hashlib.sha256(artifact).hexdigest(),
        "versions": versions(),
        "training_data_sha256": training_data_sha256,
        "seed": seed,
        "feature_names": feature_names,
        "metrics": metrics,
        "checks": checks,
        "answers": answers,
    }


def write(out_dir: Path, artifact: bytes, manifest_data: dict[str, Any]) -> tuple[Path, Path]:
    """Write model.joblib then model.json via temporary files renamed into place."""
    out_dir.mkdir(parents=True, exist_ok=True)
    targets = [
        (out_dir / ARTIFACT, artifact),
        (out_dir / MANIFEST, (json.dumps(manifest_data, indent=2, sort_keys=False) + "\n").encode()),
    ]
    temporaries: list[tuple[Path, Path]] = []
    try:
        for target, data in targets:
            temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            with temporary.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            temporaries.append((temporary, target))
        for temporary, target in temporaries:
            temporary.replace(target)
    finally:
        for temporary, _ in temporaries:
            temporary.unlink(missing_ok=True)
    return out_dir / ARTIFACT, out_dir / MANIFEST
