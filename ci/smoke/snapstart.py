"""SnapStart in the smoke run: init -> before-snapshot hooks -> snapshot -> restore -> after-restore hooks -> invoke.

The client does what it does on Lambda; Lambda's own restore latency cannot be measured here, so `restore_s`
is only the after-restore hooks and the client's overhead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ci.smoke.runtime_api import RuntimeApi

ORDER = ("init", "before_snapshot", "snapshot", "restore", "after_restore", "invoke")
NOT_MEASURED = (
    "Lambda's restore latency (resuming the snapshot) cannot be measured off AWS: restore_s is the after-restore "
    "hooks plus the client's overhead here; see RestoreDuration in the function's REPORT log lines on Lambda"
)


def read_hooks(control: Path) -> dict[str, dict[str, Any]]:
    path = control / "hooks.jsonl"
    lines = path.read_text().splitlines() if path.is_file() else []
    return {row["phase"]: row for row in (json.loads(line) for line in lines if line.strip())}


def restore(
    api: RuntimeApi, control: Path, started: float, wait_s: float, running: Any
) -> tuple[dict[str, Any], list[str]]:
    """Restore the snapshotted client and wait for it to ask for work; (report section, failures)."""
    api.release_restore()
    state = api.wait_restored(wait_s, running)
    snapshot_at, restored_at = api.state.snapshot_at, api.state.restored_at
    assert snapshot_at is not None and restored_at is not None
    hooks = read_hooks(control)
    section: dict[str, Any] = {"state": state, "hooks": hooks, "restore_note": NOT_MEASURED}
    failures: list[str] = []
    if state == "error":
        error = api.state.restore_error or {}
        failures.append(f"after-restore hook failed: {error.get('errorType', '')}: {error.get('errorMessage', '')}")
    elif state != "ready":
        failures.append(f"the restored function did not ask for work ({state}) within {wait_s:g} s")
    else:
        assert api.state.first_next is not None
        section["restore_s"] = round(api.state.first_next - restored_at, 3)
    times = {
        "init": started,
        "before_snapshot": (hooks.get("before_snapshot") or {}).get("started"),
        "snapshot": snapshot_at,
        "restore": restored_at,
        "after_restore": (hooks.get("after_restore") or {}).get("started"),
        "invoke": api.state.first_next,
    }
    section["phases_s"] = {name: None if at is None else round(at - started, 3) for name, at in times.items()}
    seen = [name for name in ORDER if times[name] is not None]
    section["order"] = sorted(seen, key=lambda name: (times[name], ORDER.index(name)))
    if not failures:
        if section["order"] != list(ORDER):
            failures.append(f"SnapStart phases ran as {' -> '.join(section['order'])}, not {' -> '.join(ORDER)}")
        for phase in ("before_snapshot", "after_restore"):
            if (hooks.get(phase) or {}).get("hooks", 0) == 0:
                failures.append(
                    f"function.snapstart is on but the handler registered no {phase.replace('_', '-')} hook "
                    "(snapshot_restore_py.register_before_snapshot / register_after_restore)"
                )
    return section, failures
