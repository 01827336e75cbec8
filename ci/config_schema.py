"""pipeline.toml's one-line refusals (file, section, key, value, what is allowed, did-you-mean, fix).

Standard library only: ci.config reads [target] with it where no pydantic is installed, and
ci/config_sections.py words pydantic's validation errors with it.
"""

from __future__ import annotations

import difflib
import json
import tomllib
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from ci.errors import ConfigError


def toml_value(value: object) -> str:
    """How `value` is spelled in TOML, so messages quote the file's own text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{key} = {toml_value(item)}" for key, item in value.items()) + " }"
    return repr(value)


def closest(name: str, known: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return close[0] if close else None


def suggestion(name: str, known: Iterable[str]) -> str:
    """' (did you mean X?)' for the closest known name, or ''."""
    close = closest(name, known)
    return f" (did you mean {close}?)" if close else ""


def read_toml(file: Path) -> dict[str, Any]:
    if not file.is_file():
        raise ConfigError(f"{file} not found", "run from the repository root (it holds pipeline.toml) or pass --config")
    try:
        return tomllib.loads(file.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file} is not valid TOML: {exc}", "fix the syntax at the position named") from exc


def check_table(file: Path, name: str, values: object, known: Collection[str]) -> dict[str, Any]:
    """`values` as the table [name], refused if it is not one or holds a key that is not `known`."""
    if not isinstance(values, dict):
        raise ConfigError(
            f"{file}: {name} is {toml_value(values)}, not a table of keys", f"write it as [{name}] with its keys"
        )
    check_names(file, f"[{name}]", values, known, "key")
    return values


def check_names(file: Path, where: str, found: Iterable[str], known: Collection[str], what: str) -> None:
    """Refuse names that are not `known` (a typo is never silently ignored)."""
    for name in found:
        if name not in known:
            close = closest(name, known)
            raise ConfigError(
                f"{file}: {where} has an unknown {what} {name}{suggestion(name, known)}; allowed: {', '.join(known)}",
                f"rename it to {close}" if close else "remove it",
            )


def refusal(file: Path, section: str, key: str, values: Mapping[str, Any], wants: str, example: str) -> ConfigError:
    """[section] key is missing, or its value is not what it `wants`: the line to write is `example`."""
    if key not in values:
        return ConfigError(
            f"{file}: [{section}] {key} is missing: it must be {wants}", f"add {key} = {example} under [{section}]"
        )
    return ConfigError(
        f"{file}: [{section}] {key} = {toml_value(values[key])} is not allowed: it must be {wants}",
        f"write {key} = {example} under [{section}]",
    )
