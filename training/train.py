"""Training as steps: get the data, split, fit, evaluate, gate, bundle, write. Testable without the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import sklearn

from training import allowlist, bundle, dataset, gate, model, schema, simulator
from training.metrics import evaluate
from training.settings import TrainingSettings


@dataclass(frozen=True)
class TrainingResult:
    model_path: Path
    manifest_path: Path
    manifest: dict[str, Any]


def load_data(settings: TrainingSettings, seed: int, data: Path | None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The review log and a description of where it came from (for the bundle's metadata)."""
    if data is not None:
        return dataset.load_csv(data), {"kind": "csv", "file": data.name}
    params = simulator.HLRParameters()
    frame = simulator.simulate(seed, settings.learners, settings.items, settings.reviews, params)
    source = {
        "kind": "simulator",
        "learners": settings.learners,
        "items": settings.items,
        "reviews": settings.reviews,
        "hlr_parameters": simulator.describe(params),
    }
    return frame, source


def run(settings: TrainingSettings, out_dir: Path, seed: int, data: Path | None = None) -> TrainingResult:
    frame, source = load_data(settings, seed, data)
    data_sha256 = dataset.fingerprint(frame)
    train, test = model.split(frame, settings.test_fraction, seed)
    estimator = model.fit(train, seed)
    predicted = model.predict_recall(estimator, test)
    true_p = test[schema.TRUE_P].to_numpy() if schema.TRUE_P in test.columns else None
    metrics = evaluate(test[schema.LABEL].to_numpy(), predicted, float(train[schema.LABEL].mean()), true_p)
    gate.enforce(metrics, settings)

    bundle_data = {
        "sklearn_model": estimator,
        "feature_names": list(schema.FEATURE_NAMES),
        "metadata": {
            "task": "p(recall) = sklearn_model.predict_proba(X[feature_names])[:, 1]",
            "estimator": type(estimator).__name__,
            "hyperparameters": dict(model.HYPERPARAMETERS),
            "monotonic": {schema.DELTA: "decreasing"},
            "seed": seed,
            "data": source,
            "training_data_sha256": data_sha256,
            "rows": {"train": len(train), "test": len(test)},
            "metrics": metrics,
            "versions": bundle.versions(),
            "sklearn_version": sklearn.__version__,
        },
    }
    artifact = bundle.dump_bytes(bundle_data)
    allowlist.require_loadable(artifact, estimator)
    manifest = bundle.manifest(artifact, data_sha256, seed, list(schema.FEATURE_NAMES), metrics)
    model_path, manifest_path = bundle.write(out_dir, artifact, manifest)
    return TrainingResult(model_path, manifest_path, manifest)
