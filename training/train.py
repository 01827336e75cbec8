"""Training as steps: get the data, split, fit, evaluate, check the contract, gate, bundle, answer the
committed events, write. Testable without the CLI."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
import sklearn

from ci.config_sections import TrainingConfig as TrainingSettings
from handler import contract, model_store, predict
from handler.errors import ModelLoadError
from training import allowlist, bundle, dataset, gate, model, schema, simulator
from training.answers import answer_events
from training.errors import TrainingError
from training.metrics import evaluate, history_errors
from training.settings import events_dir


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


def reference_errors(estimator: Any) -> dict[str, dict[str, float]]:
    """The model against the simulator's true recall at each of simulator.REFERENCE_HISTORIES."""
    histories = simulator.REFERENCE_HISTORIES
    frame = pd.DataFrame(list(histories.values()), columns=schema.FEATURE_NAMES)
    predicted = model.predict_recall(estimator, frame)
    true = simulator.recall_probability(*(frame[name].to_numpy() for name in schema.FEATURE_NAMES))
    names = list(histories)
    return history_errors(
        {name: float(predicted[i]) for i, name in enumerate(names)},
        {name: float(true[i]) for i, name in enumerate(names)},
    )


def load_back(artifact: bytes) -> model_store.LoadedModel:
    """The model as the handler loads it, from exactly these bytes (ours: nothing foreign is unpickled)."""
    digest = hashlib.sha256(artifact).hexdigest()
    try:
        return model_store.from_bundle(joblib.load(io.BytesIO(artifact)), digest, "the trained model")
    except ModelLoadError as exc:
        raise TrainingError(f"the handler refuses the trained model: {exc}", "see docs/own-model.md") from exc


def run(
    settings: TrainingSettings, out_dir: Path, seed: int, data: Path | None = None, events: Path | None = None
) -> TrainingResult:
    """`events`: the committed smoke events to answer (default: [smoke] events of pipeline.toml)."""
    events = events or events_dir()
    frame, source = load_data(settings, seed, data)
    data_sha256 = dataset.fingerprint(frame)
    train, test = model.split(frame, settings.test_fraction, seed)
    estimator = model.fit(train, seed)
    predicted = model.predict_recall(estimator, test)
    true_p = test[schema.TRUE_P].to_numpy() if schema.TRUE_P in test.columns else None
    metrics = evaluate(test[schema.LABEL].to_numpy(), predicted, float(train[schema.LABEL].mean()), true_p)
    # The simulator's truth at fixed histories: only simulated data has it (a CSV's p_true may use other parameters).
    errors = reference_errors(estimator) if source["kind"] == "simulator" else None
    metrics["max_history_error"] = max(found["error"] for found in errors.values()) if errors else None
    in_memory = model_store.LoadedModel(estimator, list(schema.FEATURE_NAMES), "", sklearn.__version__)
    monotonic = contract.check_monotonic(lambda rows: predict.recall(in_memory, rows), contract.GATE_HISTORIES)
    gate.enforce(metrics, settings, monotonic, type(estimator).__name__, errors)

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
    answers = answer_events(load_back(artifact), events)
    checks = {"monotonic": monotonic.to_json()}
    manifest = bundle.manifest(artifact, data_sha256, seed, list(schema.FEATURE_NAMES), metrics, checks, answers)
    model_path, manifest_path = bundle.write(out_dir, artifact, manifest)
    return TrainingResult(model_path, manifest_path, manifest)
