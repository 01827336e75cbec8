"""Load the model bundle once per container, and only if its bytes are the ones we meant to deploy.

The SHA-256 is checked before unpickling, only allow-listed globals are imported, and a bundle from another
scikit-learn or one breaking handler/contract.py is refused: it would answer wrongly without any error.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from handler import contract, settings
from handler.contract import ELAPSED
from handler.errors import ModelLoadError
from handler.settings import ModelSource, model_source

REQUIRED_KEYS = ("sklearn_model", "feature_names")
_LOADED: dict[ModelSource, LoadedModel] = {}


@dataclass(frozen=True)
class LoadedModel:
    estimator: Any
    feature_names: list[str]
    sha256: str
    sklearn_version: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> dict[str, str]:
        """How every response names the model."""
        return {"sha256": self.sha256[:12], "sklearn_version": self.sklearn_version}


def get_model() -> LoadedModel:
    """The model for the current environment, loaded on first use and kept for the container's life."""
    source = model_source()
    if source not in _LOADED:
        _LOADED[source] = load(source)
    return _LOADED[source]


def load(source: ModelSource) -> LoadedModel:
    data, origin = read_bytes(source)
    digest = hashlib.sha256(data).hexdigest()
    if source.sha256 is not None and digest != source.sha256:
        raise ModelLoadError(
            f"refusing to load {origin}: its SHA-256 is {digest} but MODEL_SHA256 is {source.sha256}; "
            "the file was not unpickled. Deploy the model.joblib whose hash model.json records, or fix MODEL_SHA256."
        )
    bundle = unpickle(data, origin)
    model = from_bundle(bundle, digest, origin)
    limit_threads(settings.threads())
    return model


def limit_threads(threads: int) -> None:
    """Predict on few OpenMP threads: Lambda's fractional vCPUs make more threads contend, not help.

    (Measured on a busy 2-core host: 400 ms per single prediction with default threads, 10 ms with one.)
    """
    from threadpoolctl import threadpool_limits  # scikit-learn's own dependency, in the layer

    threadpool_limits(limits=threads, user_api="openmp")


def read_bytes(source: ModelSource) -> tuple[bytes, str]:
    if source.path:
        path = Path(source.path)
        try:
            return path.read_bytes(), str(path)
        except OSError as exc:
            raise ModelLoadError(f"cannot read MODEL_PATH={source.path}: {exc.strerror or exc}") from exc
    if source.s3_uri:
        return read_s3(source.s3_uri), source.s3_uri
    raise ModelLoadError("no model configured: set MODEL_PATH (a local file) or MODEL_S3_URI (s3://bucket/key)")


def read_s3(uri: str) -> bytes:
    if not uri.startswith("s3://") or "/" not in uri[5:] or uri.endswith("/"):
        raise ModelLoadError(f"MODEL_S3_URI={uri!r} is not of the form s3://bucket/key")
    bucket, key = uri[5:].split("/", 1)
    import boto3  # provided by the Lambda runtime; imported only when the model lives in S3

    try:
        response = boto3.client("s3").get_object(Bucket=bucket, Key=key)
        return bytes(response["Body"].read())
    except Exception as exc:  # botocore's errors: permissions, missing key, network
        raise ModelLoadError(f"cannot fetch MODEL_S3_URI={uri}: {exc}") from exc


def unpickle(data: bytes, origin: str) -> Any:
    """joblib.load, importing only the globals of handler/model_globals.txt (handler/safe_unpickle.py)."""
    from sklearn.exceptions import InconsistentVersionWarning

    from handler.safe_unpickle import ForbiddenGlobal, load_bundle

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", InconsistentVersionWarning)
            return load_bundle(data)
    except ForbiddenGlobal as exc:
        raise ModelLoadError(
            f"refusing to load {origin}: it references {exc.module}.{exc.name}, which is not in "
            "handler/model_globals.txt (the exact globals a model may reference); nothing it names was called. "
            "A model trained with other library versions than the layer's names other globals: retrain with "
            "training/requirements.txt; otherwise never deploy this file."
        ) from exc
    except InconsistentVersionWarning as exc:
        raise ModelLoadError(
            f"{origin} was pickled by scikit-learn {exc.original_sklearn_version} but this runtime has "
            f"{exc.current_sklearn_version}; retrain with the layer's versions (training/requirements.txt)"
        ) from exc
    except Exception as exc:  # a truncated or foreign file fails in many ways inside pickle
        raise ModelLoadError(f"{origin} is not a readable joblib model bundle: {type(exc).__name__}: {exc}") from exc


def from_bundle(bundle: Any, digest: str, origin: str) -> LoadedModel:
    import sklearn

    if not isinstance(bundle, dict):
        raise ModelLoadError(
            f"{origin} holds a {type(bundle).__name__}, not a bundle dict with keys {', '.join(REQUIRED_KEYS)}"
        )
    missing = [key for key in REQUIRED_KEYS if key not in bundle]
    if missing:
        found = ", ".join(repr(key) for key in bundle) or "none"
        raise ModelLoadError(
            f"{origin} is a bundle without {', '.join(repr(key) for key in missing)}; keys found: {found}. "
            'Write it as {"sklearn_model": estimator, "feature_names": [...], "metadata": {...}} (python -m training).'
        )
    names = bundle["feature_names"]
    if not isinstance(names, list) or not names or not all(isinstance(name, str) for name in names):
        raise ModelLoadError(f"{origin}: feature_names must be a non-empty list of strings, got {names!r}")
    if ELAPSED not in names:
        raise ModelLoadError(f"{origin}: feature_names {names} lack {ELAPSED!r}, the elapsed time in days")
    estimator = bundle["sklearn_model"]
    if not hasattr(estimator, "predict_proba"):
        raise ModelLoadError(f"{origin}: sklearn_model is a {type(estimator).__name__}, which has no predict_proba")
    metadata = bundle.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    model = LoadedModel(estimator, list(names), digest, sklearn.__version__, metadata)
    require_contract(model, origin)
    return model


def require_contract(model: LoadedModel, origin: str) -> None:
    """The contract's features, and recall falling with elapsed time on a few histories (one predict call)."""
    from handler import predict  # predict imports this module

    estimator = type(model.estimator).__name__
    problem = contract.feature_problem(model.feature_names, model.estimator)
    if problem:
        raise ModelLoadError(f"{origin}: {problem}; retrain with `python -m training` (make train)")
    try:
        check = contract.check_monotonic(lambda rows: predict.recall(model, rows), contract.LOAD_HISTORIES)
    except Exception as exc:  # an estimator that cannot predict the contract's rows at all
        raise ModelLoadError(f"{origin}: {estimator} cannot predict: {type(exc).__name__}: {exc}") from exc
    if not check.passed:
        raise ModelLoadError(
            f"{origin}: {check.problem(estimator)}; {contract.MONOTONIC_FIX}, and retrain (`python -m training`)"
        )
