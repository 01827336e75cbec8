"""GitHub's workflow-command syntax (`::error file=...::message`) and the files a runner hands a step.

Escaping follows the runner's rules: the message escapes %, CR and LF; property values also
escape ':' and ','. Without it a multi-line message is cut at its first line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

LEVELS = ("error", "warning", "notice")


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


@dataclass(frozen=True)
class Annotation:
    """One line GitHub shows on the run and on the pull request's Files tab."""

    level: str
    message: str
    title: str | None = None
    file: str | None = None
    line: int | None = None

    def render(self) -> str:
        if self.level not in LEVELS:
            raise ValueError(f"annotation level {self.level!r} is not one of {LEVELS}")
        props = []
        if self.file:
            props.append(f"file={escape_property(self.file)}")
        if self.line:
            props.append(f"line={self.line}")
        if self.title:
            props.append(f"title={escape_property(self.title)}")
        head = f"::{self.level}" + (" " + ",".join(props) if props else "")
        return f"{head}::{escape_data(self.message)}"


def runner_file(variable: str, environ: Mapping[str, str] | None = None) -> Path | None:
    """The file behind $GITHUB_STEP_SUMMARY / $GITHUB_OUTPUT, or None when not on a runner."""
    value = (environ if environ is not None else os.environ).get(variable, "")
    return Path(value) if value else None


def append_outputs(values: Mapping[str, str], environ: Mapping[str, str] | None = None) -> str:
    """Append `key=value` lines to $GITHUB_OUTPUT; returns the text (printed when not on a runner)."""
    for key, value in values.items():
        if "\n" in value or "\r" in value:
            raise ValueError(f"output {key!r} must be a single line")
    text = "".join(f"{key}={value}\n" for key, value in values.items())
    target = runner_file("GITHUB_OUTPUT", environ)
    if target is not None:
        with target.open("a", encoding="utf-8") as handle:
            handle.write(text)
    return text
