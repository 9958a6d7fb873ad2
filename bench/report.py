"""Result tables (pure): a figure, its baseline, their ratio, and the issue's target."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bench.stats import ratio


@dataclass(frozen=True)
class Target:
    """A target of issue 12 §2: `text` as written there, `check(figure, baseline)` -> met."""

    text: str
    check: Callable[[float, float], bool]

    def verdict(self, figure: float, baseline: float) -> str:
        if math.isnan(figure):
            return "not measured"
        return "met" if self.check(figure, baseline) else "not met"


def at_most(limit: float, text: str) -> Target:
    return Target(text, lambda figure, _baseline: figure <= limit)


def ratio_at_most(factor: float, text: str, plus: float = 0.0) -> Target:
    return Target(text, lambda figure, baseline: figure <= factor * baseline + plus)


@dataclass(frozen=True)
class Row:
    figure: str
    value: float
    baseline: float = math.nan
    unit: str = ""
    target: Target | None = None
    note: str = ""


@dataclass
class Table:
    title: str
    baseline_name: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)


@dataclass
class Grid:
    """Rows (one per client, say) by columns of figures, each cell formatted already: for
    comparisons of several alternatives, where a Table has one value and one baseline."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def number(value: float, unit: str = "") -> str:
    """Compact human figures: 0.123 s -> '123 ms', NaN -> '-'."""
    if math.isnan(value):
        return "-"
    if unit == "s":
        if abs(value) < 1:
            return f"{value * 1000:.0f} ms"
        return f"{value:.2f} s" if abs(value) < 100 else f"{value:.0f} s"
    if unit == "MB":
        return f"{value:.0f} MB"
    if unit == "%":
        return f"{value:.1f} %"
    text = f"{value:.0f}" if abs(value) >= 100 or value == int(value) else f"{value:.2f}"
    return f"{text} {unit}".strip()


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _cells(table: Table) -> list[list[str]]:
    rows = []
    for row in table.rows:
        r = ratio(row.value, row.baseline)
        rows.append(
            [
                row.figure + (f" ({row.note})" if row.note else ""),
                number(row.value, row.unit),
                number(row.baseline, row.unit),
                "-" if math.isnan(r) else f"{r:.2f}x",
                row.target.text if row.target else "",
                row.target.verdict(row.value, row.baseline) if row.target else "",
            ]
        )
    return rows


def markdown(table: Table | Grid) -> str:
    if isinstance(table, Grid):
        header, rows = table.columns, table.rows
    else:
        header = ["figure", "value", table.baseline_name, "ratio", "target", "verdict"]
        rows = _cells(table)
    lines = [
        f"### {table.title}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + " --- |" * len(header),
        *("| " + " | ".join(_cell(c) for c in cells) + " |" for cells in rows),
        "",
        *(f"- {note}" for note in table.notes),
    ]
    return "\n".join(lines).rstrip() + "\n"


def document(title: str, header: Sequence[str], tables: Sequence[Table | Grid]) -> str:
    body = "\n".join(markdown(t) for t in tables)
    return f"# {title}\n\n" + "".join(f"{line}\n" for line in header) + "\n" + body
