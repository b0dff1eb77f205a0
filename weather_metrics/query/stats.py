"""Aggregate statistics for /v1/stats, answered from the rollups (never from raw events).

Each public function's answer is kept in `ANSWERS` until the events' data version moves
(query/answers.py). A period ends with today (UTC), so an answer depends on `now` only
through its UTC date, which is part of the question.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from peewee import fn

from weather_metrics.core.errors import ServiceError
from weather_metrics.core.histogram import percentile_from_histogram
from weather_metrics.core.times import DAY, iso
from weather_metrics.query import spans, tool_sums
from weather_metrics.query.answers import AnswerCache
from weather_metrics.store import folds, versions
from weather_metrics.store.db import database, execute, is_postgresql
from weather_metrics.store.events import (
    LATENCY_SPANS,
    CountryDaily,
    ErrorDaily,
    LastSeenDaily,
    LatencyDaily,
    ServiceDaily,
    VersionDaily,
)

PERIODS = {"7d": 7, "30d": 30, "90d": 90}
DEFAULT_PERIOD = "30d"
ANSWERS = AnswerCache(versions.EVENTS, 16 * 2**20)  # create_app sets its size from `stats_cache_mib`
Answer = dict[str, Any]


class UnknownTool(ServiceError, LookupError):
    """The tool has no data in the period."""


class Remembered:
    """`compute(*question, now)`, answered from ANSWERS when the data has not changed since.

    Errors (UnknownTool) are raised every time, never kept. `text` gives the same answer as
    JSON text, for a web response.
    """

    def __init__(self, compute: Callable[..., Answer]) -> None:
        functools.update_wrapper(self, compute)
        self.compute = compute

    def _question(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        *question, now = args
        return (self.compute.__name__, *question, now.astimezone(UTC).date())

    def __call__(self, *args: Any) -> Answer:
        return ANSWERS.answer(self._question(args), lambda: self.compute(*args))  # type: ignore[no-any-return]

    def text(self, *args: Any) -> str:
        return ANSWERS.text(self._question(args), lambda: self.compute(*args))


def period_window(period: str, now: datetime) -> tuple[datetime, datetime]:
    """From midnight N days before today to the end of today (UTC), as in the contract."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=PERIODS[period])
    end = today + timedelta(days=1) - timedelta(milliseconds=1)
    return start, end


def _bounds(period: str, now: datetime) -> tuple[int, int]:
    """The period as Unix seconds, both ends included."""
    start, end = period_window(period, now)
    return int(start.timestamp()), int(end.timestamp())


Histogram = list[tuple[int, int]]  # (latency bucket, calls): see core/histogram.py


def _fetch(query: Any) -> list[Any]:
    """The rows of a peewee query (typed loosely: peewee has no type stubs)."""
    return list(query)


def _tuples(query: Any) -> list[tuple[Any, ...]]:
    """The rows of a peewee query as SQLite returns them: for thousands of rows, peewee's own
    iteration costs more than the query."""
    return database.execute(query).fetchall()  # type: ignore[no-any-return]


def _rate(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def _mean(total: float, count: int) -> float | None:
    return round(total / count, 1) if count else None


def _day_entry(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "calls": row["calls"],
        "success_rate": _rate(row["calls"] - row["errors"], row["calls"]),
        "avg_response_time_ms": _mean(row["rt_sum"], row["timed"]),
    }


def _tool_entry(name: str, row: dict[str, Any], histogram: Histogram) -> dict[str, Any]:
    return {"name": name, **_day_entry(row), "p95_ms": _percentile(histogram, 0.95)}


def _percentile(histogram: Histogram, fraction: float) -> float | None:
    value = percentile_from_histogram(histogram, fraction)
    return None if value is None else round(value, 3)


_SPANNED = "SELECT tool, bucket, calls FROM tool_latency_spans WHERE span = ? AND start = ?"
_DAYS = "SELECT tool, bucket, {sign}calls FROM tool_latency_daily WHERE day BETWEEN {first} AND {last}"
_FOLDED = folds.folded_through("tool_latency_spans")  # the spans hold the days up to this one


def _histogram_reads(first_day: int, last_day: int) -> list[tuple[str, tuple[Any, ...]]]:
    """The SELECTs (and their parameters) whose rows add up to the histograms of the days [first_day, last_day].

    The spans hold the days up to span_folds' `through_day` (store/folds.py): their later days
    come from the daily rows, and the days after `last_day` a last span holds are taken away
    only up to it. It is read inside the one statement these make, so a fold between two reads
    cannot count a day twice or not at all.
    """
    chosen, singles, beyond = spans.day_spans_to_end(first_day, last_day, LATENCY_SPANS)
    greatest, least = ("GREATEST", "LEAST") if is_postgresql() else ("MAX", "MIN")
    unfolded = _DAYS.format(sign="", first=f"{greatest}(?, {_FOLDED} + {DAY})", last="?")
    parts: list[tuple[str, tuple[Any, ...]]] = [(_SPANNED, pair) for pair in chosen]
    parts += [(unfolded, days) for days in spans.span_days(chosen, last_day)]
    parts += [(_DAYS.format(sign="", first="?", last="?"), days) for days in singles]
    parts += [(_DAYS.format(sign="-", first="?", last=f"{least}(?, {_FOLDED})"), days) for days in beyond]
    return parts


def _tool_histograms(span: tuple[int, int], tool: str | None = None) -> dict[str, Histogram]:
    """Each tool's response-time histogram over the period (of one tool, or of all).

    Spans of days inside the period come from ToolLatencySpans, its other days from
    ToolLatencyDaily, in one GROUP BY: sorting those rows is the cost, about 6 spans' and
    days' rows for 91 days. The last span may run past the period's end (today), and the
    days it holds after it (at most an hour of tomorrow's) are taken away again.
    """
    parts = _histogram_reads(-(-span[0] // DAY) * DAY, (span[1] + 1) // DAY * DAY - DAY)  # whole UTC days
    if tool is not None:
        parts = [(f"{sql} AND tool = ?", (*params, tool)) for sql, params in parts]
    histograms: dict[str, Histogram] = {}
    if not parts:
        return histograms
    union = " UNION ALL ".join(sql for sql, _ in parts)
    rows = execute(
        f"SELECT tool, bucket, SUM(calls) FROM ({union}) AS r GROUP BY tool, bucket",
        [value for _, params in parts for value in params],
    )
    for name, bucket, calls in rows.fetchall():
        if calls:  # a bucket whose calls all fell after the period
            histograms.setdefault(name, []).append((bucket, calls))
    return histograms


def _tool_entries(span: tuple[int, int], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    histograms = _tool_histograms(span)
    return [_tool_entry(r["tool"], r, histograms.get(r["tool"], [])) for r in rows]


def _totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {k: sum(r[k] or 0 for r in rows) for k in tool_sums.SUMS}


def _active_installs(span: tuple[int, int]) -> int:
    """Sessions last seen in the period or later: its days' counts (the period starts at midnight)."""
    first_day = span[0] // DAY * DAY
    assert first_day == span[0]
    seen = LastSeenDaily.select(fn.SUM(LastSeenDaily.sessions)).where(LastSeenDaily.day >= first_day)
    return int(seen.scalar() or 0)


@Remembered
def errors(period: str, now: datetime) -> dict[str, Any]:
    span = _bounds(period, now)
    return {"period": period, "errors": _error_entries(span)}


def _error_entries(span: tuple[int, int]) -> list[dict[str, Any]]:
    rows = _fetch(
        ErrorDaily.select(
            ErrorDaily.error_type,
            fn.SUM(ErrorDaily.errors).alias("count"),
            fn.MAX(ErrorDaily.last_seen).alias("last_seen"),
        )
        .where(ErrorDaily.day.between(*span))
        .group_by(ErrorDaily.error_type)
        .order_by(fn.SUM(ErrorDaily.errors).desc(), ErrorDaily.error_type)
        .dicts()
    )
    total = sum(r["count"] for r in rows)
    return [
        {
            "type": r["error_type"],
            "count": r["count"],
            "percentage": _rate(r["count"], total),
            "last_seen": iso(r["last_seen"]),
        }
        for r in rows
    ]


def _shares(
    model: Any, column: Any, tool: str | None, span: tuple[int, int], whole: int, label: str
) -> list[dict[str, Any]]:
    """Calls per value of `column` (of one tool, or of all), with each one's share of `whole`."""
    where = model.day.between(*span)
    if tool is not None:
        where &= model.tool == tool
    rows = (
        model.select(column.alias("key"), fn.SUM(model.calls).alias("calls"))
        .where(where)
        .group_by(column)
        .order_by(fn.SUM(model.calls).desc(), column)
        .dicts()
    )
    return [{label: r["key"], "calls": r["calls"], "percentage": _rate(r["calls"], whole)} for r in rows]


def _daily_entries(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"date": datetime.fromtimestamp(r["day"], UTC).strftime("%Y-%m-%d"), **_day_entry(r)} for r in rows]


def _response_times(histogram: Histogram, totals: dict[str, Any]) -> dict[str, float | None]:
    return {
        "avg_ms": _mean(totals["rt_sum"], totals["timed"]),
        "p50_ms": _percentile(histogram, 0.50),
        "p95_ms": _percentile(histogram, 0.95),
        "p99_ms": _percentile(histogram, 0.99),
    }


@Remembered
def tool_detail(name: str, period: str, now: datetime) -> dict[str, Any]:
    """Summary, response times, daily series, versions and countries of one tool; UnknownTool without data."""
    span = _bounds(period, now)
    daily = tool_sums.per_day(span, name)
    if not daily:
        raise UnknownTool(name)
    totals = _totals(daily)
    histogram = _tool_histograms(span, name).get(name, [])
    return {
        "tool": name,
        "period": period,
        "summary": _tool_entry(name, totals, histogram),
        "response_times": _response_times(histogram, totals),
        "daily_data": _daily_entries(daily),
        "versions": _shares(VersionDaily, VersionDaily.version, name, span, totals["calls"], "version"),
        "countries": _shares(CountryDaily, CountryDaily.country, name, span, totals["calls"], "country"),
    }


class PeriodFigures:
    """The /v1/stats answers of one period; what several of them need is read once.

    A page showing the overview, the performance, calls per day and the breakdowns builds one.
    """

    def __init__(self, period: str, now: datetime) -> None:
        self.period, self.now = period, now
        self.span = _bounds(period, now)

    @cached_property
    def tool_rows(self) -> list[dict[str, Any]]:
        """Per tool: calls, errors and the sums behind its rates, most calls first."""
        return tool_sums.per_tool(self.span)

    @cached_property
    def totals(self) -> dict[str, Any]:
        return _totals(self.tool_rows)

    def tools(self) -> dict[str, Any]:
        return {"period": self.period, "tools": _tool_entries(self.span, self.tool_rows)}

    def overview(self) -> dict[str, Any]:
        start_dt, end_dt = period_window(self.period, self.now)
        span, totals = self.span, self.totals
        seen = VersionDaily.select(fn.COUNT(VersionDaily.version.distinct())).where(VersionDaily.day.between(*span))
        return {
            "period": self.period,
            "start_date": iso(start_dt),
            "end_date": iso(end_dt),
            "summary": {
                "total_calls": totals["calls"],
                "unique_versions": seen.scalar() or 0,
                "active_installs": _active_installs(span),
                "success_rate": _rate(totals["calls"] - totals["errors"], totals["calls"]),
                "avg_response_time_ms": _mean(totals["rt_sum"], totals["timed"]),
            },
            "tools": _tool_entries(span, self.tool_rows),
            "errors": _error_entries(span),
            "cache_hit_rate": _rate(totals["hits"], totals["hits"] + totals["misses"]),
        }

    def daily(self) -> dict[str, Any]:
        """Every tool's calls together, per UTC date with calls: tool_detail's daily_data summed over the tools."""
        return {"period": self.period, "daily_data": _daily_entries(tool_sums.per_day(self.span, None))}

    def versions_and_countries(self) -> dict[str, Any]:
        """Calls per version and per country over every tool (tool_detail's, summed), with shares of all calls."""
        span, whole = self.span, self.totals["calls"]
        return {
            "period": self.period,
            "versions": _shares(VersionDaily, VersionDaily.version, None, span, whole, "version"),
            "countries": _shares(CountryDaily, CountryDaily.country, None, span, whole, "country"),
        }

    def performance(self) -> dict[str, Any]:
        span, totals = self.span, self.totals
        histogram = _fetch(
            LatencyDaily.select(LatencyDaily.bucket, fn.SUM(LatencyDaily.calls))
            .where(LatencyDaily.day.between(*span))
            .group_by(LatencyDaily.bucket)
            .tuples()
        )
        services = _fetch(
            ServiceDaily.select(ServiceDaily.service, fn.SUM(ServiceDaily.calls))
            .where(ServiceDaily.day.between(*span))
            .group_by(ServiceDaily.service)
            .order_by(fn.SUM(ServiceDaily.calls).desc(), ServiceDaily.service)
            .tuples()
        )
        return {
            "period": self.period,
            "response_times": _response_times(histogram, totals),
            "cache_performance": {
                "hit_rate": _rate(totals["hits"], totals["hits"] + totals["misses"]),
                "total_hits": totals["hits"],
                "total_misses": totals["misses"],
            },
            "service_distribution": {service: calls for service, calls in services},
        }


@Remembered
def overview(period: str, now: datetime) -> dict[str, Any]:
    return PeriodFigures(period, now).overview()


@Remembered
def tools(period: str, now: datetime) -> dict[str, Any]:
    return PeriodFigures(period, now).tools()


@Remembered
def page(period: str, now: datetime) -> dict[str, Any]:
    """What the overview page shows, from one read of the per-tool sums."""
    figures = PeriodFigures(period, now)
    return {
        "overview": figures.overview(),
        "performance": figures.performance(),
        "daily": figures.daily(),
        "usage": figures.versions_and_countries(),
    }


@Remembered
def daily(period: str, now: datetime) -> dict[str, Any]:
    return PeriodFigures(period, now).daily()


@Remembered
def versions_and_countries(period: str, now: datetime) -> dict[str, Any]:
    return PeriodFigures(period, now).versions_and_countries()


@Remembered
def performance(period: str, now: datetime) -> dict[str, Any]:
    return PeriodFigures(period, now).performance()
