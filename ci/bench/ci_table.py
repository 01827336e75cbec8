"""The bench-ci table: each measurement, its seconds, its target and whether it was met."""

from __future__ import annotations

from typing import Any

from ci.tables import text_table


def render_ci_table(result: dict[str, Any]) -> str:
    rows = []
    for row in result["rows"]:
        target = f"<= {row['target_s']:g} s" if row["target_s"] is not None else ""
        met = {True: "met", False: "MISSED", None: ""}[row["met"]]
        rows.append([row["measurement"], f"{row['seconds']:.1f} s", target, met])
    load = result["load_average"]
    header = (
        f"bench-ci at {result['commit'][:12]}, {result['cpus']} CPUs; load average (1, 5, 15 min) "
        f"{load['start']} at the start, {load['end']} at the end"
    )
    return header + "\n\n" + text_table(["measurement", "time", "target", ""], rows, numeric_from=1)
