"""The one error type training raises for people to read: what is wrong and what to do."""

from __future__ import annotations


class TrainingError(Exception):
    """A failure the CLI prints as `error: <problem>` and `fix: <fix>`, exiting non-zero."""

    def __init__(self, problem: str, fix: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.problem}\n  fix: {self.fix}" if self.fix else self.problem
