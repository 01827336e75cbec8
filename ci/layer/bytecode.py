"""Step 6, bytecode (placeholder until the trace lands)."""

from __future__ import annotations

from typing import Any


def step_bytecode(state: Any) -> None:
    state.data["bytecode"] = {"mode": "none", "files": 0, "bytes": 0}
