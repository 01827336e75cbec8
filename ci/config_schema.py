"""Typed reads of one TOML table, each mistake refused in one line that names file, section and key.

ci/config_sections.py describes pipeline.toml's sections with these reads; nothing here knows
what the keys mean. Every error says what was found, what is allowed and the line to write.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any, Final

from ci.errors import ConfigError


class _Required:
    """Marks a key without a default: leaving it out is an error, not a silent guess."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Final = _Required()


def toml_value(value: object) -> str:
    """How `value` is spelled in TOML, so messages quote the file's own text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return json.dumps(value)
    if isinstance(value, list):
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


def check_names(file: Path, where: str, found: Iterable[str], known: Collection[str], what: str) -> None:
    """Refuse names that are not `known` (a typo is never silently ignored)."""
    for name in found:
        if name not in known:
            close = closest(name, known)
            fix = f"rename it to {close}" if close else "remove it"
            raise ConfigError(
                f"{file}: {where} has an unknown {what} {name}{suggestion(name, known)}; allowed: {', '.join(known)}",
                fix,
            )


class Table:
    """One TOML table (`[section]`, or an entry of an array of tables) read key by key."""

    def __init__(self, file: Path, name: str, values: object, known: Collection[str]) -> None:
        if not isinstance(values, dict):
            raise ConfigError(
                f"{file}: {name} is {toml_value(values)}, not a table of keys", f"write it as [{name}] with its keys"
            )
        self.file, self.name, self.values = file, name, values
        check_names(file, f"[{name}]", values, known, "key")

    def _bad(self, key: str, wants: str, example: str) -> ConfigError:
        if key not in self.values:
            return ConfigError(
                f"{self.file}: [{self.name}] {key} is missing: it must be {wants}",
                f"add {key} = {example} under [{self.name}]",
            )
        return ConfigError(
            f"{self.file}: [{self.name}] {key} = {toml_value(self.values[key])} is not allowed: it must be {wants}",
            f"write {key} = {example} under [{self.name}]",
        )

    def _get(self, key: str, default: object, wants: str, example: str) -> object:
        if key in self.values:
            return self.values[key]
        if default is REQUIRED:
            raise self._bad(key, wants, example)
        return default

    def text(
        self, key: str, example: str, default: str | _Required = REQUIRED, pattern: str = ".+", wants: str = ""
    ) -> str:
        """A string matching `pattern` (by default: not empty)."""
        wants = wants or "a non-empty string"
        value = self._get(key, default, wants, example)
        if not isinstance(value, str) or not re.fullmatch(pattern, value):
            raise self._bad(key, wants, example)
        return value

    def path(self, key: str, example: str, roots: Sequence[Path], default: str | _Required = REQUIRED) -> Path:
        """A path relative to roots[0] (the repository) that stays inside one of `roots` once resolved."""
        return self._inside(key, self.text(key, example, default=default), roots, example)

    def paths(self, key: str, example: str, roots: Sequence[Path], default: tuple[str, ...]) -> tuple[Path, ...]:
        return tuple(self._inside(key, item, roots, example) for item in self.texts(key, example, default=default))

    def _inside(self, key: str, value: str, roots: Sequence[Path], example: str) -> Path:
        path = roots[0] / value
        if not any(path.resolve().is_relative_to(root.resolve()) for root in roots):
            where = " or ".join(str(root) for root in roots)
            raise ConfigError(
                f"{self.file}: [{self.name}] {key} = {toml_value(value)} is not allowed: it must be a path inside "
                f"the repository ({where}), and {path.resolve()} is not",
                f"write {key} = {example} under [{self.name}] (relative to the repository)",
            )
        return path

    def globs(self, key: str, example: str, default: tuple[str, ...]) -> tuple[str, ...]:
        """Relative path globs: no absolute path, no '..' segment (they match inside one tree only)."""
        value = self.texts(key, example, default=default)
        for item in value:
            if item.startswith("/") or "\\" in item or ".." in item.split("/"):
                raise ConfigError(
                    f"{self.file}: [{self.name}] {key} names {toml_value(item)}, which is not allowed: each must be "
                    "a relative path glob without '..' segments or backslashes",
                    f"write {key} = {example} under [{self.name}]",
                )
        return value

    def choice(self, key: str, choices: Collection[str], default: str | _Required = REQUIRED) -> str:
        wants = "one of " + ", ".join(toml_value(choice) for choice in choices)
        example = toml_value(default if isinstance(default, str) else next(iter(choices)))
        value = self._get(key, default, wants, example)
        if value not in choices:
            raise self._bad(key, wants, example)
        return str(value)

    def integer(
        self,
        key: str,
        example: int,
        minimum: int,
        maximum: int | None = None,
        default: int | _Required = REQUIRED,
        unit: str = "",
    ) -> int:
        """An integer (never a boolean) from `minimum` to `maximum`; `unit` ("MB") says what it counts."""
        wants = f"an integer from {minimum:,} to {maximum:,}" if maximum is not None else f"an integer >= {minimum}"
        wants += f" {unit}" if unit else ""
        value = self._get(key, default, wants, str(example))
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self._bad(key, wants, str(example))
        if maximum is not None and value > maximum:
            raise self._bad(key, wants, str(example))
        return value

    def number(
        self,
        key: str,
        example: float,
        above: float | None = None,
        minimum: float | None = None,
        maximum: float | None = None,
        below: float | None = None,
        default: float | _Required = REQUIRED,
    ) -> float:
        """A number (integer or float, never a boolean) in the range the arguments give."""
        bounds = [f"> {above:g}" if above is not None else "", f">= {minimum:g}" if minimum is not None else ""]
        bounds += [f"<= {maximum:g}" if maximum is not None else "", f"< {below:g}" if below is not None else ""]
        wants = "a number " + " and ".join(bound for bound in bounds if bound)
        value = self._get(key, default, wants, str(example))
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._bad(key, wants, str(example))
        if (
            (above is not None and not value > above)
            or (minimum is not None and value < minimum)
            or (maximum is not None and value > maximum)
            or (below is not None and not value < below)
        ):
            raise self._bad(key, wants, str(example))
        return float(value)

    def flag(self, key: str, default: bool | _Required = REQUIRED) -> bool:
        example = toml_value(default if isinstance(default, bool) else False)
        value = self._get(key, default, "true or false", example)
        if not isinstance(value, bool):
            raise self._bad(key, "true or false", example)
        return value

    def texts(
        self, key: str, example: str, default: tuple[str, ...] | _Required = REQUIRED, choices: Collection[str] = ()
    ) -> tuple[str, ...]:
        """A list of strings (of `choices`, if given). A lone string is refused, not read letter by letter."""
        wants = "a list of " + (f"names from {', '.join(choices)}" if choices else "strings")
        value = self._get(key, default, wants, example)
        if isinstance(value, str):
            raise self._bad(key, wants, f"[{toml_value(value)}]")
        if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
            raise self._bad(key, wants, example)
        for item in value:
            if choices and item not in choices:
                raise ConfigError(
                    f"{self.file}: [{self.name}] {key} names {toml_value(item)}{suggestion(item, choices)}, "
                    f"which is not one of {', '.join(choices)}",
                    f"fix or remove {toml_value(item)} in {key}",
                )
        return tuple(value)

    def tables(self, key: str, example: str, known: Collection[str]) -> tuple[Table, ...]:
        """An array of inline tables (each read as its own Table named key[index]); absent: empty."""
        value = self._get(key, [], "a list of tables", example)
        if not isinstance(value, list):
            raise self._bad(key, "a list of tables", example)
        return tuple(Table(self.file, f"{self.name}.{key}[{index}]", item, known) for index, item in enumerate(value))
