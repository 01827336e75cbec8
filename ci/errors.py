"""Errors a user reads: each says what is wrong and what to do about it."""

from __future__ import annotations

# Exit codes every command uses: 0 passed, 1 a check failed or a step could not finish, 2 usage or configuration
# (argparse's own), 3 a missing tool or environment, 130 interrupted (128 + SIGINT).
FAILED, USAGE, MISSING_ENVIRONMENT, INTERRUPTED = 1, 2, 3, 130


class PipelineError(Exception):
    """A failure with a cause and a fix; the CLI prints both and exits non-zero."""

    def __init__(self, problem: str, fix: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix

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
