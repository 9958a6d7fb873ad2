"""Rows of text aligned in columns, as kubectl prints its tables (for `describe` and `graph`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

# paint(row, column, padded cell) -> the cell as printed (e.g. with colour around it):
# applied after padding, so colour codes never count towards a column's width.
Paint = Callable[[int, int, str], str]


def columns(
    rows: Sequence[Sequence[str]], paint: Paint | None = None, indent: str = ""
) -> list[str]:
    """One line per row, cells two spaces apart, the last one not padded."""
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for r, row in enumerate(rows):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        cells[-1] = row[-1]
        if paint is not None:
            cells = [paint(r, c, cell) for c, cell in enumerate(cells)]
        lines.append(indent + "  ".join(cells).rstrip())
    return lines
