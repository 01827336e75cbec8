"""[training] of pipeline.toml, checked by the same typed section as every `python -m ci` command.

Training reads its own section and [smoke] events, the committed events it answers, and reports a
mistake as a ConfigError (exit 2, like every `python -m ci` command).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ci.config import read_toml
from ci.errors import ConfigError

if TYPE_CHECKING:
    from ci.config_sections import TrainingConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "pipeline.toml"


def load_settings(path: Path = DEFAULT_CONFIG) -> TrainingConfig:
    from ci.config_sections import read_section  # pydantic: once `python -m training` found its environment

    raw = read_toml(path)
    if "training" not in raw:
        raise ConfigError(f"{path}: the [training] section is missing", "add [training] (see the README)")
    settings: TrainingConfig = read_section(path, REPO_ROOT, "training", raw["training"])
    return settings


def events_dir(path: Path = DEFAULT_CONFIG) -> Path:
    """[smoke] events (relative to the repository, as for `python -m ci`): the events training answers."""
    from ci.config_sections import read_section

    events: Path = read_section(path, REPO_ROOT, "smoke", read_toml(path).get("smoke", {})).events
    return events
