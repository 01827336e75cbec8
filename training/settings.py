"""[training] of pipeline.toml, checked by the same typed section as every `python -m ci` command.

Training reads only its own section (ci.config_schema and ci.config_sections are standard
library only, so this import stays light), and reports a mistake as a TrainingError.
"""

from __future__ import annotations

from pathlib import Path

from ci.config_schema import Table, read_toml
from ci.config_sections import TrainingConfig, keys, parse_training
from ci.errors import ConfigError
from training.errors import TrainingError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "pipeline.toml"

TrainingSettings = TrainingConfig  # the name training's modules use


def load_settings(path: Path = DEFAULT_CONFIG) -> TrainingSettings:
    try:
        raw = read_toml(path)
        if "training" not in raw:
            raise ConfigError(f"{path}: the [training] section is missing", "add [training] (see the README)")
        return parse_training(Table(path, "training", raw["training"], keys(TrainingConfig)))
    except ConfigError as exc:
        raise TrainingError(exc.problem, exc.fix) from exc
