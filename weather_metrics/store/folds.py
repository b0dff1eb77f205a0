"""Span rollups filled when their days end: a commit writes per-day rows, housekeeping adds ended days to the spans.

A span rollup (tool_latency_spans) sums a daily rollup (tool_latency_daily) over spans of
several lengths, so a long period reads a few spans instead of every day. Writing each
commit's rows into every span length cost the writer three more rows per daily row; now
`span_folds` records the last day the spans hold (`through_day`):

- housekeeping (`fold`) adds each ended day's daily rows to its spans once, in one write
  transaction that also moves `through_day` on;
- a commit's rows for days up to `through_day` (late events) still go into the spans too
  (`spanned`), read under the same write lock, so the spans always hold exactly the days
  up to `through_day`;
- readers take the days after `through_day` from the daily rows, in the same statement
  (query/stats.py), so an answer never depends on when the fold ran.
"""

from __future__ import annotations

from datetime import datetime

from peewee import IntegerField, TextField

from weather_metrics.core.times import DAY
from weather_metrics.store.db import BaseModel, execute, write_transaction
from weather_metrics.store.events import LATENCY_SPANS
from weather_metrics.store.rowkind import Row, Totals


class SpanFold(BaseModel):
    spans = TextField(primary_key=True)  # the span table
    through_day = IntegerField()  # it holds every day up to this one (a midnight), and none after

    class Meta:
        table_name = "span_folds"
        without_rowid = True


# Each span table, the daily table it sums, their key columns after (span, start) and day, and the span lengths.
FOLDS = (("tool_latency_spans", "tool_latency_daily", ("tool", "bucket"), LATENCY_SPANS),)


def through_day(spans: str) -> int:
    """The last day the span table `spans` holds, as this connection sees it."""
    row = execute("SELECT through_day FROM span_folds WHERE spans = ?", (spans,)).fetchone()
    if row is None:
        raise RuntimeError(f"span_folds has no row for {spans}: the schema is incomplete")
    return int(row[0])


def folded_through(spans: str) -> str:
    """SQL for the last day `spans` holds, for a reader's statement: read in the statement's own snapshot."""
    return f"(SELECT through_day FROM span_folds WHERE spans = '{spans}')"


def spanned(totals: Totals) -> Totals:
    """The span rows of a commit's per-day rows, for the days the spans already hold; later days wait for `fold`.

    Runs inside the writer's transaction, which holds the write lock `fold` takes too.
    """
    table = totals.model._meta.table_name  # noqa: SLF001 - peewee's way to reach a model's table
    through = through_day(table)
    figures: dict[Row, int] = {}
    # Most commits hold only days after `through`: pick the others out before unpacking any key.
    for (day, *rest), (calls,) in [item for item in totals.rows.items() if item[0][0] <= through]:
        for length in totals.spans:
            size = length * DAY
            key = (length, day // size * size, *rest)
            figures[key] = figures.get(key, 0) + calls
    return Totals(totals.model, totals.key, totals.figures, {key: (calls,) for key, calls in figures.items()})


def fold(now: datetime) -> bool:
    """Add every day that has ended and is not in its spans yet to them; returns whether any was added."""
    last = int(now.timestamp()) // DAY * DAY - DAY  # yesterday
    added = False
    for table, source, rest, lengths in FOLDS:
        if through_day(table) >= last:
            continue
        with write_transaction():
            through = through_day(table)  # another process may have folded meanwhile
            if through >= last:
                continue
            columns = ", ".join(rest)
            for length in lengths:
                size = length * DAY
                execute(
                    f"INSERT INTO {table} (span, start, {columns}, calls)"
                    f" SELECT {length}, day / {size} * {size}, {columns}, SUM(calls) FROM {source}"
                    f" WHERE day > ? AND day <= ? GROUP BY 2, {columns} ORDER BY 2, {columns}"
                    f" ON CONFLICT (span, start, {columns}) DO UPDATE SET calls = {table}.calls + excluded.calls",
                    (through, last),
                )
            execute("UPDATE span_folds SET through_day = ? WHERE spans = ?", (last, table))
        added = True
    return added
