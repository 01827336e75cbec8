"""[training] of pipeline.toml, read with tomllib directly (training/ knows nothing of ci/)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from training.errors import TrainingError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "pipeline.toml"


@dataclass(frozen=True)
class TrainingSettings:
    seed: int
    learners: int
    items: int
    reviews: int
    test_fraction: float
    max_log_loss_ratio: float  # model log loss / constant baseline's must stay below this
    min_roc_auc: float
    max_mae: float  # against the simulator's true p (skipped for data without p_true)
    max_ece: float


def load_settings(path: Path = DEFAULT_CONFIG) -> TrainingSettings:
    if not path.is_file():
        raise TrainingError(f"{path} not found", "run from the repository root or pass --config PATH")
    try:
        section = tomllib.loads(path.read_text()).get("training")
    except tomllib.TOMLDecodeError as exc:
        raise TrainingError(f"{path} is not valid TOML: {exc}", "fix the syntax at the position named") from exc
    if not isinstance(section, dict):
        raise TrainingError(f"{path} has no [training] section", "add [training] (see the README)")
    values: dict[str, int | float] = {}
    for spec in fields(TrainingSettings):
        value = section.get(spec.name)
        wanted = int if spec.type in (int, "int") else float
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or (wanted is int and isinstance(value, float))
        ):
            raise TrainingError(
                f"training.{spec.name} in {path} is {value!r}: it must be "
                + ("an integer" if wanted is int else "a number"),
                f"set training.{spec.name} in [training]",
            )
        values[spec.name] = wanted(value)
    settings = TrainingSettings(**values)  # type: ignore[arg-type]
    if not 0 < settings.test_fraction < 1:
        raise TrainingError(f"training.test_fraction = {settings.test_fraction} must be in (0, 1)", "e.g. 0.2")
    for name in ("learners", "items", "reviews"):
        if getattr(settings, name) <= 0:
            raise TrainingError(f"training.{name} must be positive", f"set training.{name} to a positive integer")
    return settings
