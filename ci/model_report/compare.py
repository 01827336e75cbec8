"""Two models side by side: held-out metrics against [training]'s gate, recorded checks, and predicted recall.

Models are unpickled only through handler.model_store (the function's own loader, digest checked first).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ci.config_sections import TrainingConfig
from ci.errors import PipelineError

DAYS = tuple(range(31))  # elapsed days drawn: 0..30
MAX_HISTORIES = 3
SAME = 1e-6  # metrics are rounded to 6 decimals by training/metrics.py


@dataclass(frozen=True)
class Metric:
    key: str  # in model.json `metrics`
    label: str
    lower_is_better: bool
    setting: str  # the [training] key that gates it


METRICS = (
    Metric("log_loss", "log loss", True, "max_log_loss_ratio"),
    Metric("roc_auc", "ROC AUC", False, "min_roc_auc"),
    Metric("mae_true_p", "MAE (vs true p)", True, "max_mae"),
    Metric("ece", "ECE (calibration)", True, "max_ece"),
)


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    base: float | None
    head: float | None
    delta: float | None  # head - base
    verdict: str  # better | worse | same | "" (not comparable)
    gate: str  # the threshold as [training] states it, e.g. "<= 0.05"
    limit: float | None  # the threshold in the metric's own units
    head_passes: bool | None


@dataclass(frozen=True)
class Curve:
    label: str  # the history, e.g. "seen 6, correct 4, wrong 1, difficulty 0.4"
    features: dict[str, float]  # without the elapsed days
    base: list[float] | None
    head: list[float] | None


@dataclass(frozen=True)
class Side:
    """One model as the report shows it (from its model.json)."""

    sha256: str
    metrics: dict[str, Any]
    monotonic: dict[str, Any] | None  # model.json checks.monotonic, None when not recorded


@dataclass
class Comparison:
    head: Side
    base: Side | None
    rows: list[Row]
    curves: list[Curve] = field(default_factory=list)
    curve_note: str = ""  # why a series is missing

    def to_dict(self) -> dict[str, Any]:
        return {
            "head_model": asdict(self.head),
            "base_model": asdict(self.base) if self.base else None,
            "metrics": [asdict(row) for row in self.rows],
            "curves": {"days": list(DAYS), "histories": [asdict(c) for c in self.curves], "note": self.curve_note},
        }


def read_manifest(model_dir: Path, what: str) -> dict[str, Any]:
    manifest = model_dir / "model.json"
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PipelineError(f"{what}: {manifest} not found", "train it first: `python -m training`") from exc
    except (OSError, ValueError) as exc:
        raise PipelineError(
            f"{what}: {manifest} is not readable JSON ({exc})", "retrain: `python -m training`"
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict) or not data.get("sha256"):
        raise PipelineError(f"{what}: {manifest} has no metrics or sha256", "retrain: `python -m training`")
    return data


def side(manifest: dict[str, Any]) -> Side:
    checks = manifest.get("checks")
    monotonic = checks.get("monotonic") if isinstance(checks, dict) else None
    return Side(str(manifest["sha256"]), dict(manifest["metrics"]), monotonic if isinstance(monotonic, dict) else None)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def gate_of(metric: Metric, head: dict[str, Any], settings: TrainingConfig) -> tuple[str, float | None]:
    """The threshold as text, and in the metric's units (log loss: a fraction of the constant baseline's)."""
    value = float(getattr(settings, metric.setting))
    if metric.key == "log_loss":
        baseline = _number(head.get("baseline_log_loss"))
        limit = None if baseline is None else round(value * baseline, 6)
        shown = f"< {limit:.4f}" if limit is not None else "< ?"
        return f"{shown} ({value} × baseline)", limit
    return (f">= {value}" if not metric.lower_is_better else f"<= {value}"), value


def rows(head: dict[str, Any], base: dict[str, Any] | None, settings: TrainingConfig) -> list[Row]:
    found = []
    for metric in METRICS:
        now = _number(head.get(metric.key))
        before = _number(base.get(metric.key)) if base is not None else None
        delta = None if now is None or before is None else round(now - before, 6)
        if delta is None:
            verdict = ""
        elif abs(delta) < SAME:
            verdict = "same"
        else:
            verdict = "better" if (delta < 0) == metric.lower_is_better else "worse"
        gate, limit = gate_of(metric, head, settings)
        if now is None or limit is None:
            passes = None
        elif metric.key == "log_loss":
            passes = now < limit
        else:
            passes = now <= limit if metric.lower_is_better else now >= limit
        found.append(Row(metric.key, metric.label, before, now, delta, verdict, gate, limit, passes))
    return found


def history_label(features: dict[str, float]) -> str:
    short = {"history_seen": "seen", "history_correct": "correct", "history_wrong": "wrong"}
    short["item_difficulty"] = "difficulty"
    return ", ".join(f"{short.get(name, name)} {value:g}" for name, value in features.items())


def histories(events_dir: Path, feature_names: list[str], elapsed: str) -> list[dict[str, float]]:
    """Distinct learner histories (the features but elapsed days) of the committed events that answer 200."""
    from handler.events import parse
    from handler.settings import DEFAULT_MAX_BATCH, DEFAULT_MAX_BODY_BYTES
    from handler.validation import validate

    found: list[dict[str, float]] = []
    for path in sorted(events_dir.glob("*.json")):
        try:
            case = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(case, dict) or (case.get("expect") or {}).get("status") != 200:
                continue
            payload = parse(case.get("event"), DEFAULT_MAX_BODY_BYTES).payload
            rows = validate(payload, feature_names, DEFAULT_MAX_BATCH).instances
        except Exception:  # an event this model cannot read is simply not drawn (smoke judges events)
            continue
        for row in rows:
            history = {name: value for name, value in zip(feature_names, row, strict=True) if name != elapsed}
            if history not in found:
                found.append(history)
    return found[:MAX_HISTORIES]


def curve(model: Any, history: dict[str, float], elapsed: str) -> list[float] | None:
    """p(recall) at each of DAYS for one history, or None when the model lacks one of its features."""
    import numpy as np

    from handler.predict import recall

    if any(name != elapsed and name not in history for name in model.feature_names):
        return None
    rows = np.array([[day if name == elapsed else history[name] for name in model.feature_names] for day in DAYS])
    return [round(float(p), 4) for p in recall(model, rows.astype("float64"))]


def load(model_dir: Path, manifest: dict[str, Any]) -> Any:
    from handler.model_store import load as load_model
    from handler.settings import ModelSource

    artifact = model_dir / str(manifest.get("artifact") or "model.joblib")
    return load_model(ModelSource(path=str(artifact), s3_uri=None, sha256=str(manifest["sha256"])))


def compare(
    head_dir: Path, base_dir: Path | None, settings: TrainingConfig, events_dir: Path, draw_base: bool = True
) -> Comparison:
    """The comparison; `draw_base` False when the base model is the head model (one series is enough)."""
    from handler.contract import ELAPSED
    from handler.errors import ModelLoadError

    head_manifest = read_manifest(head_dir, "this checkout's model")
    base_manifest = read_manifest(base_dir, "the base model") if base_dir is not None else None
    result = Comparison(
        side(head_manifest),
        side(base_manifest) if base_manifest else None,
        rows(head_manifest["metrics"], base_manifest["metrics"] if base_manifest else None, settings),
    )
    try:
        head_model = load(head_dir, head_manifest)
    except ModelLoadError as exc:
        raise PipelineError(f"this checkout's model cannot be loaded: {exc}", "retrain: `python -m training`") from exc
    base_model = None
    if base_dir is not None and base_manifest is not None and draw_base:
        try:
            base_model = load(base_dir, base_manifest)
        except ModelLoadError as exc:
            result.curve_note = f"the base model cannot be loaded, so only the head is drawn: {exc}"
    for history in histories(events_dir, head_model.feature_names, ELAPSED):
        result.curves.append(
            Curve(
                history_label(history),
                history,
                curve(base_model, history, ELAPSED) if base_model is not None else None,
                curve(head_model, history, ELAPSED),
            )
        )
    return result
