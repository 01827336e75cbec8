"""One JSON line per invocation on stdout, which Lambda sends to CloudWatch Logs (query with Logs Insights)."""

from __future__ import annotations

import json
import sys
from typing import Any


def log_invocation(**fields: Any) -> None:
    log_event("invocation", **fields)


def log_event(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}, default=str, separators=(",", ":")) + "\n")
    sys.stdout.flush()
