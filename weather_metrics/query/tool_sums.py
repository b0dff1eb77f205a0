"""Per-tool sums over a range of time: whole UTC days from tool_daily, only the other hours from tool_hourly.

A 90-day period read hour by hour sorts 2,184 hours of rows per tool for its GROUP BY; read
as days it sorts 91. The answers are the same sums either way: tool_daily holds tool_hourly
added up per day (store/events.py writes both in one transaction and prunes them together).
"""

from __future__ import annotations

from functools import reduce
from typing import Any

from peewee import fn

from weather_metrics.core.times import DAY, HOUR
from weather_metrics.query.spans import Ranges, whole_days
from weather_metrics.store.db import database
from weather_metrics.store.events import ToolDaily, ToolHourly

SUMS = ("calls", "errors", "timed", "rt_sum", "hits", "misses")
"""The figures summed per tool or day, by the names the answers are built from."""

_COLUMNS = ("calls", "errors", "timed_calls", "response_time_sum", "cache_hits", "cache_misses")

Span = tuple[int, int]  # Unix seconds, both ends included


def split(span: Span) -> tuple[Ranges, Ranges]:
    """The hours starting inside `span`, as ranges of whole UTC days and ranges of the hours left."""
    first, last = -(-span[0] // HOUR) * HOUR, span[1] // HOUR * HOUR
    return whole_days(first, last)


def _covered(model: Any, start: Any, ranges: Ranges, tool: str | None) -> Any:
    where = reduce(lambda a, b: a | b, (start.between(low, high) for low, high in ranges))
    return where if tool is None else where & (model.tool == tool)


def _sums(model: Any) -> list[Any]:
    return [fn.SUM(getattr(model, column)) for column in _COLUMNS]


def per_tool(span: Span) -> list[dict[str, Any]]:
    """Per tool with calls in `span`: the sums of SUMS, most calls first (then by name, as the database orders)."""
    days, hours = split(span)
    reads = ((ToolDaily, ToolDaily.day, days), (ToolHourly, ToolHourly.hour, hours))
    parts: list[Any] = [
        model.select(model.tool, *(getattr(model, c) for c in _COLUMNS)).where(_covered(model, start, ranges, None))
        for model, start, ranges in reads
        if ranges
    ]
    if not parts:
        return []
    rows = reduce(lambda a, b: a.union_all(b), parts).alias("rows")
    summed = [fn.SUM(getattr(rows.c, column)) for column in _COLUMNS]
    query = rows.select_from(rows.c.tool, *summed).group_by(rows.c.tool).order_by(summed[0].desc(), rows.c.tool)
    return [dict(zip(("tool", *SUMS), row, strict=True)) for row in database.execute(query).fetchall()]


def per_day(span: Span, tool: str | None = None) -> list[dict[str, Any]]:
    """Per UTC day with calls in `span` (of one tool, or of all), in order: the sums of SUMS."""
    days, hours = split(span)
    found: dict[int, list[Any]] = {}
    if days:
        daily = ToolDaily.select(ToolDaily.day, *_sums(ToolDaily)).where(_covered(ToolDaily, ToolDaily.day, days, tool))
        for day, *sums in database.execute(daily.group_by(ToolDaily.day)).fetchall():
            found[day] = sums
    if hours:
        # Summed per hour in SQL, in the primary key's order (no sort), and per day here: sorting
        # the rows by a day expression for GROUP BY cost more than folding 24 rows a day.
        where = _covered(ToolHourly, ToolHourly.hour, hours, tool)
        hourly = ToolHourly.select(ToolHourly.hour, *_sums(ToolHourly)).where(where).group_by(ToolHourly.hour)
        for hour, *sums in database.execute(hourly).fetchall():
            into = found.setdefault(hour // DAY * DAY, [0] * len(sums))
            for index, value in enumerate(sums):
                into[index] += value
    return [{"day": day, **dict(zip(SUMS, sums, strict=True))} for day, sums in sorted(found.items())]
