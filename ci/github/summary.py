"""Markdown reports into the job summary ($GITHUB_STEP_SUMMARY), where a run's page shows them.

Off a runner the Markdown goes to stdout, so the step can be tried locally.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from ci.github.workflow_commands import runner_file

# GitHub refuses a step summary over 1 MiB; leave room for the other steps.
MAX_SUMMARY_BYTES = 1_000_000


def summary_text(files: Iterable[Path]) -> str:
    parts = []
    for file in files:
        if file.is_file():
            parts.append(file.read_text(encoding="utf-8").rstrip() + "\n")
        else:
            parts.append(f"> **{file}** was not produced: its check stopped before writing it (see the log).\n")
    text = "\n".join(parts)
    encoded = text.encode()
    if len(encoded) > MAX_SUMMARY_BYTES:
        text = encoded[:MAX_SUMMARY_BYTES].decode(errors="ignore") + "\n\n_(truncated)_\n"
    return text


def write_summary(files: Iterable[Path], environ: Mapping[str, str] | None = None) -> Path | None:
    """Append the files to the job summary; returns its path, or None when printed to stdout instead."""
    return write_summary_text(summary_text(files), environ)


def write_summary_text(text: str, environ: Mapping[str, str] | None = None) -> Path | None:
    target = runner_file("GITHUB_STEP_SUMMARY", environ)
    if target is None:
        sys.stdout.write(text)
        return None
    with target.open("a", encoding="utf-8") as handle:
        handle.write(text + "\n")
    return target
