"""The handler's environment variables, read in one place.

Every variable is checked by check() when handler.app is imported: a bad value fails the init
phase with a message naming the variable, its value and what is allowed, instead of turning
every request of the container into a 500.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

DEFAULT_MAX_BATCH = 1000
DEFAULT_MAX_BODY_BYTES = 1_048_576  # well under Lambda's 6 MB synchronous payload limit
DEFAULT_HORIZON_DAYS = 3650.0  # days_until_target is searched up to ten years
LAMBDA_PAYLOAD_BYTES = 6_291_456  # Lambda refuses larger synchronous requests before the handler runs
WHOLE_NUMBERS = {  # name: (default, largest allowed)
    "MAX_BATCH_SIZE": (DEFAULT_MAX_BATCH, 100_000),
    "MAX_BODY_BYTES": (DEFAULT_MAX_BODY_BYTES, LAMBDA_PAYLOAD_BYTES),
    "TARGET_HORIZON_DAYS": (int(DEFAULT_HORIZON_DAYS), 36_500),  # a century: float-safe, bounded search
    "MODEL_THREADS": (1, 64),
}
WHOLE_NUMBER = re.compile(r"[0-9]{1,12}")  # ASCII digits only: int() would also take "1_000" and "٣"
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
S3_URI = re.compile(r"s3://[^/\s]+/.*[^/]")


@dataclass(frozen=True)
class Problem:
    name: str
    value: str  # as set, cut to 80 characters
    allowed: str

    def __str__(self) -> str:
        return f"environment variable {self.name}={self.value!r} is not allowed: {self.allowed}"


class SettingsError(Exception):
    """Environment variables with values the handler cannot run with: a broken deployment, not a bad request."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(problem) for problem in problems))
        self.problems = problems


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


def check() -> None:
    """Read every variable, raising one SettingsError for all bad ones: one redeploy fixes them all."""
    problems: list[Problem] = []
    readers: list[Callable[[], object]] = [_sha256, _s3_uri, *(partial(_whole, name) for name in WHOLE_NUMBERS)]
    for read in readers:
        try:
            read()
        except SettingsError as exc:
            problems.extend(exc.problems)
    if problems:
        raise SettingsError(problems)


def model_source() -> ModelSource:
    return ModelSource(path=os.environ.get("MODEL_PATH") or None, s3_uri=_s3_uri(), sha256=_sha256())


def limits() -> Limits:
    return Limits(
        max_batch=_whole("MAX_BATCH_SIZE"),
        max_body_bytes=_whole("MAX_BODY_BYTES"),
        horizon_days=float(_whole("TARGET_HORIZON_DAYS")),
    )


def threads() -> int:
    """MODEL_THREADS: OpenMP threads for prediction (default 1)."""
    return _whole("MODEL_THREADS")


def running_on_lambda() -> bool:
    """The managed runtime sets _HANDLER; then the model is loaded during the init phase."""
    return bool(os.environ.get("_HANDLER"))


def _sha256() -> str | None:
    text = _optional("MODEL_SHA256")
    if text is not None and not SHA256_HEX.fullmatch(text.lower()):
        raise _invalid("MODEL_SHA256", text, "must be 64 hexadecimal digits (a SHA-256), or unset")
    return text.lower() if text else None


def _s3_uri() -> str | None:
    text = _optional("MODEL_S3_URI")
    if text is not None and not S3_URI.fullmatch(text):
        raise _invalid("MODEL_S3_URI", text, "must be of the form s3://bucket/key, or unset")
    return text


def _optional(name: str) -> str | None:
    """Unset and blank both mean unset (a template may leave a variable empty)."""
    text = os.environ.get(name, "").strip()
    return text or None


def _whole(name: str) -> int:
    """A whole number in [1, maximum]; unset or blank means the default."""
    default, maximum = WHOLE_NUMBERS[name]
    text = _optional(name)
    if text is None:
        return default
    if not WHOLE_NUMBER.fullmatch(text) or not 1 <= int(text) <= maximum:
        raise _invalid(name, text, f"must be a whole number from 1 to {maximum}, or unset for {default}")
    return int(text)


def _invalid(name: str, value: str, allowed: str) -> SettingsError:
    return SettingsError([Problem(name, value if len(value) <= 80 else value[:80] + "...", allowed)])
