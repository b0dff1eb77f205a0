"""What a report file shows, whatever its format: the `Report` and its figures, tables and charts.

Numbers stay numbers here; each column, figure and chart says what its numbers measure
(`unit`), so a printed report can write "87.6 %" or "2,642 ms" while CSV and XLSX keep the
raw values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

Cell = str | int | float | bool | datetime | None
Row = Sequence[Cell]
Progress = Callable[[int], None]
PROGRESS_EVERY = 5000

# Units of numbers: how a printed report writes them (reports/figures.py).
COUNT = "count"  # whole things: calls, samples, ranks
NUMBER = "number"  # values as sent (productivity metrics)
RATE = "rate"  # a fraction 0-1, printed as a percentage
MS = "ms"  # a duration in milliseconds
TEXT = ""


@dataclass(frozen=True)
class Column:
    """A column: `name` heads CSV and XLSX files, `title` (by default the name) a printed table."""

    name: str
    unit: str = TEXT
    title: str = ""
    printed: bool = True  # False: identifiers that only a machine reads (CSV and XLSX keep them)

    @property
    def heading(self) -> str:
        return self.title or self.name.replace("_", " ")


@dataclass(frozen=True)
class Figure:
    """One summary figure."""

    label: str
    value: Cell
    unit: str = TEXT


@dataclass(frozen=True)
class Table:
    """A small table held in memory (summary breakdowns)."""

    title: str
    columns: Sequence[Column]
    rows: Sequence[Row]


@dataclass(frozen=True)
class Chart:
    """One metric drawn as bars: over periods (columns), or across categories such as teams (rows)."""

    title: str
    labels: Sequence[str]
    values: Sequence[float | None]
    unit: str
    measure: str  # what the values are, the value axis' title: "calls", "commits"
    axis: str  # what the labels are: "day", "week starting", "team"
    categories: bool = False
    label_every: Sequence[int] = ()  # periods between labels that read well (every 6 hours, every 7 days)


@dataclass
class Report:
    """Everything a report file shows; `rows` is consumed once, by the writer (None: left out)."""

    title: str
    organization: str
    period: str
    filters: Sequence[tuple[str, str]]
    summary: Sequence[Figure]
    breakdown: Table | None
    charts: Sequence[Chart]
    columns: Sequence[Column]
    rows: Iterable[Row] | None
    notes: Sequence[str] = field(default_factory=list)
    expected_rows: int | None = None  # known from the summary: lets progress be a percentage
    rows_title: str = "Data rows"
    rows_first: bool = False  # a short table that is the report itself (teams): printed before the charts

    @property
    def header(self) -> list[str]:
        return [column.name for column in self.columns]


def counted(rows: Iterable[Row], progress: Progress | None) -> Iterator[Row]:
    """The rows, calling `progress(rows_done)` every PROGRESS_EVERY rows and once at the end."""
    done = 0
    for row in rows:
        yield row
        done += 1
        if progress is not None and done % PROGRESS_EVERY == 0:
            progress(done)
    if progress is not None and done % PROGRESS_EVERY:
        progress(done)
