"""The one renderer of aligned tables for the terminal (budget, bench, ABI and pin checks print with it)."""

from collections.abc import Sequence


def text_table(
    headers: Sequence[object],
    rows: Sequence[Sequence[object]],
    numeric_from: int | None = None,
    indent: str = "",
    rule: bool = True,
) -> str:
    """Columns padded to their widest cell: text left, numbers (from column `numeric_from` on) right."""
    cells = [["" if cell is None else str(cell) for cell in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        padded = [
            cell.rjust(width) if numeric_from is not None and index >= numeric_from else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        return (indent + "  ".join(padded)).rstrip()

    lines = [line(row) for row in cells]
    if rule:
        lines.insert(1, indent + "  ".join("-" * width for width in widths))
    return "\n".join(lines)
