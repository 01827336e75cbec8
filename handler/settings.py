"""The handler's environment variables, read in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_MAX_BATCH = 1000
DEFAULT_MAX_BODY_BYTES = 1_048_576  # well under Lambda's 6 MB synchronous payload limit
DEFAULT_HORIZON_DAYS = 3650.0  # days_until_target is searched up to ten years


@dataclass(frozen=True)
class ModelSource:
    path: str | None  # MODEL_PATH: a local file (local runs, the smoke invocation)
    s3_uri: str | None  # MODEL_S3_URI: s3://bucket/key, fetched with the runtime's boto3
    sha256: str | None  # MODEL_SHA256: the bytes must hash to this before they are unpickled


@dataclass(frozen=True)
class Limits:
    max_batch: int
    max_body_bytes: int
    horizon_days: float


def model_source() -> ModelSource:
    return ModelSource(
        path=os.environ.get("MODEL_PATH") or None,
        s3_uri=os.environ.get("MODEL_S3_URI") or None,
        sha256=(os.environ.get("MODEL_SHA256") or "").strip().lower() or None,
    )


def limits() -> Limits:
    return Limits(
        max_batch=_positive("MAX_BATCH_SIZE", DEFAULT_MAX_BATCH),
        max_body_bytes=_positive("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
        horizon_days=float(_positive("TARGET_HORIZON_DAYS", int(DEFAULT_HORIZON_DAYS))),
    )


def threads() -> int:
    """MODEL_THREADS: OpenMP threads for prediction (default 1)."""
    return _positive("MODEL_THREADS", 1)


def running_on_lambda() -> bool:
    """The managed runtime sets _HANDLER; then the model is loaded during the init phase."""
    return bool(os.environ.get("_HANDLER"))


def _positive(name: str, default: int) -> int:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise ValueError(f"environment variable {name}={text!r} must be a positive integer")
    return value
