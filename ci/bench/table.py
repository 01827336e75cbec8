"""The benchmark as a terminal table, with ratios against the naive baseline."""

from __future__ import annotations

from typing import Any

from ci.tables import text_table
from ci.units import as_mb

ROWS: list[tuple[str, str, str]] = [
    # (label, key, format)
    ("unzipped (function + layer)", "unzipped_bytes", "mb"),
    ("zipped (function + layer)", "zipped_bytes", "mb"),
    ("build time, warm cache", "build_s", "s"),
    ("cold-start init, median", "cold_start_s.median", "s"),
    ("smoke init (awslambdaric)", "smoke_init_s", "s"),
    ("warm invocation p50", "warm_p50_ms", "ms"),
    ("warm invocation p95", "warm_p95_ms", "ms"),
    ("peak RSS", "peak_rss_mb", "mbr"),
    ("bytes imported or mapped", "imported_bytes", "mb"),
]


def _get(variant: dict[str, Any], key: str) -> float | None:
    value: Any = variant
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return None if value is None else float(value)


def _fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "n/a"
    return {
        "mb": as_mb(value),
        "s": f"{value:.2f} s",
        "ms": f"{value:.2f} ms",
        "mbr": f"{value:,.0f} MB",
    }[kind]


def render_table(result: dict[str, Any]) -> str:
    variants = result["variants"]
    names = ["naive", "default", "compact"]
    header = ["", *names, "default/naive", "compact/naive"]
    rows = [header]
    for label, key, kind in ROWS:
        values = [_get(variants[name], key) for name in names]
        ratios = [f"{value / values[0]:.2f}x" if value is not None and values[0] else "n/a" for value in values[1:]]
        rows.append([label, *(_fmt(v, kind) for v in values), *ratios])
    lines = text_table(rows[0], rows[1:], numeric_from=1).splitlines()
    lines.append("")
    lines.append(f"MB = 1,000,000 bytes. Cold start: median of {result['runs']} fresh isolated interpreters.")
    lines.append("")
    for check in result["checks"]:
        lines.append(f"{'PASS' if check['met'] else 'FAIL'}  {check['target']}: {check['value']}")
    return "\n".join(lines)
