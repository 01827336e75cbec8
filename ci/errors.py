"""Errors a user reads: each says what is wrong and what to do about it; pipeline.toml's one-line refusals
(file, section, key, value, what is allowed, did-you-mean, fix). Standard library only."""

import difflib
import json
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

# Exit codes every command uses: 0 passed, 1 a check failed or a step could not finish, 2 usage or configuration
# (argparse's own), 3 a missing tool or environment, 130 interrupted (128 + SIGINT).
FAILED, USAGE, MISSING_ENVIRONMENT, INTERRUPTED = 1, 2, 3, 130


class PipelineError(Exception):
    """A failure with a cause and a fix; the CLI prints both and exits non-zero."""

    def __init__(self, problem: str, fix: str = "") -> None:
        super().__init__(problem)
        self.problem, self.fix = problem, fix

    def __str__(self) -> str:
        return f"{self.problem}\n  fix: {self.fix}" if self.fix else self.problem

    def one_line(self) -> str:
        return f"{self.problem}; fix: {self.fix}" if self.fix else self.problem


class ConfigError(PipelineError):
    """pipeline.toml (or a value in it) is missing or invalid: one line, so a log grep finds it whole."""

    def __str__(self) -> str:
        return self.one_line()


class CheckFailedError(PipelineError):
    """A verification ran and found a problem (budget, pins, ABI, smoke...)."""


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
    return next(iter(difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)), None)


def suggestion(name: str, known: Iterable[str]) -> str:
    close = closest(name, known)
    return f" (did you mean {close}?)" if close else ""


def check_table(file: Path, name: str, values: object, known: Collection[str]) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise ConfigError(
            f"{file}: {name} is {toml_value(values)}, not a table of keys", f"write it as [{name}] with its keys"
        )
    check_names(file, f"[{name}]", values, known, "key")
    return values


def check_names(file: Path, where: str, found: Iterable[str], known: Collection[str], what: str) -> None:
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
