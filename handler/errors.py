"""Two kinds of failure: the caller's request is wrong (400), or the deployed model is (fail loudly)."""

from __future__ import annotations


class RequestError(Exception):
    """A bad request: reported to the caller as status 400 with the offending field named."""

    def __init__(self, field: str, message: str, status: int = 400) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status


class ModelLoadError(Exception):
    """The model cannot be trusted or used; the function must not serve predictions."""
