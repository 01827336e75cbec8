"""Sizes as people read them: exact bytes plus decimal megabytes (1 MB = 1,000,000 bytes)."""

MB = 1_000_000
UNITS_NOTE = "sizes in bytes and decimal MB: 1 MB = 1,000,000 bytes"


def as_bytes(value: int) -> str:
    return f"{value:,}"


def as_mb(value: float, digits: int = 1, unit: str = " MB") -> str:
    """The one MB formatter: 231,000,000 -> "231.0 MB" (unit="" for a table column already headed MB)."""
    return f"{value / MB:,.{digits}f}{unit}"


def mb_cell(value: int | None) -> str:
    return "" if value is None else as_mb(value, unit="")


def signed_bytes(value: int) -> str:
    return f"{value:+,}" if value else "±0"


def signed_mb(value: int) -> str:
    """+12.4 MB, -0.3 MB; changes under 0.05 MB in bytes so a small change never reads as zero."""
    if value == 0:
        return "±0 bytes"
    if abs(value) < 50_000:
        return f"{value:+,} bytes"
    return f"{value / MB:+,.1f} MB"
