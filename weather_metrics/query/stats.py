"""Aggregate statistics for /v1/stats, answered from the rollups (never from raw events).

Each public function's answer is kept in `ANSWERS` until the events' data version moves
(query/answers.py). A period ends with today (UTC), so an answer depends on `now` only
through its UTC date, which is part of the question.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from peewee import fn

from weather_metrics.core.errors import ServiceError
from weather_metrics.core.histogram import percentile_from_histogram
from weather_metrics.core.times import DAY, iso
from weather_metrics.query.answers import AnswerCache
from weather_metrics.store import versions
from weather_metrics.store.events import (
    CountryDaily,
    ErrorDaily,
    LatencyDaily,
    ServiceDaily,
    Session,
    ToolHourly,
    VersionDaily,
)

PERIODS = {"7d": 7, "30d": 30, "90d": 90}
DEFAULT_PERIOD = "30d"
ANSWERS = AnswerCache(versions.EVENTS, 16 * 2**20)  # create_app sets its size from `stats_cache_mib`
Answer = dict[str, Any]


class UnknownTool(ServiceError, LookupError):
    """The tool has no data in the period."""


def remembered(compute: Callable[..., Answer]) -> Callable[..., Answer]:
    """`compute(*question, now)`, answered from ANSWERS when the data has not changed since.

    Errors (UnknownTool) are raised every time, never kept.
    """

    @functools.wraps(compute)
    def answer(*args: Any) -> Answer:
        *question, now = args
        key = (compute.__name__, *question, now.astimezone(UTC).date())
        return ANSWERS.answer(key, lambda: compute(*args))  # type: ignore[no-any-return]

    return answer


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


def _fetch(query: Any) -> list[Any]:
    """The rows of a peewee query (typed loosely: peewee has no type stubs)."""
    return list(query)


def _rate(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def _mean(total: float, count: int) -> float | None:
    return round(total / count, 1) if count else None


def _tool_sums() -> list[Any]:
    return [
        fn.SUM(ToolHourly.calls).alias("calls"),
        fn.SUM(ToolHourly.errors).alias("errors"),
        fn.SUM(ToolHourly.timed_calls).alias("timed"),
        fn.SUM(ToolHourly.response_time_sum).alias("rt_sum"),
        fn.SUM(ToolHourly.cache_hits).alias("hits"),
        fn.SUM(ToolHourly.cache_misses).alias("misses"),
    ]


def _tool_entry(name: str, row: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "calls": row["calls"],
        "success_rate": _rate(row["calls"] - row["errors"], row["calls"]),
        "avg_response_time_ms": _mean(row["rt_sum"], row["timed"]),
    }


def _tool_rows(span: tuple[int, int]) -> list[dict[str, Any]]:
    return _fetch(
        ToolHourly.select(ToolHourly.tool, *_tool_sums())
        .where(ToolHourly.hour.between(*span))
        .group_by(ToolHourly.tool)
        .order_by(fn.SUM(ToolHourly.calls).desc(), ToolHourly.tool)
        .dicts()
    )


def _totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("calls", "errors", "timed", "rt_sum", "hits", "misses")
    return {k: sum(r[k] or 0 for r in rows) for k in keys}


@remembered
def tools(period: str, now: datetime) -> dict[str, Any]:
    span = _bounds(period, now)
    return {"period": period, "tools": [_tool_entry(r["tool"], r) for r in _tool_rows(span)]}


@remembered
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


@remembered
def overview(period: str, now: datetime) -> dict[str, Any]:
    start_dt, end_dt = period_window(period, now)
    span = _bounds(period, now)
    rows = _tool_rows(span)
    totals = _totals(rows)
    unique_versions = (
        VersionDaily.select(fn.COUNT(VersionDaily.version.distinct())).where(VersionDaily.day.between(*span)).scalar()
    )
    active_installs = Session.select().where(Session.last_seen >= span[0]).count()
    return {
        "period": period,
        "start_date": iso(start_dt),
        "end_date": iso(end_dt),
        "summary": {
            "total_calls": totals["calls"],
            "unique_versions": unique_versions or 0,
            "active_installs": active_installs,
            "success_rate": _rate(totals["calls"] - totals["errors"], totals["calls"]),
            "avg_response_time_ms": _mean(totals["rt_sum"], totals["timed"]),
        },
        "tools": [_tool_entry(r["tool"], r) for r in rows],
        "errors": _error_entries(span),
        "cache_hit_rate": _rate(totals["hits"], totals["hits"] + totals["misses"]),
    }


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


def _daily_rows(span: tuple[int, int], tool: str | None) -> list[dict[str, Any]]:
    day = ToolHourly.hour / DAY * DAY  # integer division; peewee's `%` means LIKE
    where = ToolHourly.hour.between(*span)
    if tool is not None:
        where &= ToolHourly.tool == tool
    return _fetch(ToolHourly.select(day.alias("day"), *_tool_sums()).where(where).group_by(day).order_by(day).dicts())


def _daily_entries(name: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "date": datetime.fromtimestamp(r["day"], UTC).strftime("%Y-%m-%d"),
            **{k: v for k, v in _tool_entry(name, r).items() if k != "name"},
        }
        for r in rows
    ]


@remembered
def tool_detail(name: str, period: str, now: datetime) -> dict[str, Any]:
    """Summary, daily series, versions and countries of one tool; UnknownTool without data."""
    span = _bounds(period, now)
    daily = _daily_rows(span, name)
    if not daily:
        raise UnknownTool(name)
    totals = _totals(daily)
    return {
        "tool": name,
        "period": period,
        "summary": _tool_entry(name, totals),
        "daily_data": _daily_entries(name, daily),
        "versions": _shares(VersionDaily, VersionDaily.version, name, span, totals["calls"], "version"),
        "countries": _shares(CountryDaily, CountryDaily.country, name, span, totals["calls"], "country"),
    }


@remembered
def daily(period: str, now: datetime) -> dict[str, Any]:
    """Every tool's calls together, per UTC date with calls: tool_detail's daily_data summed over the tools."""
    return {"period": period, "daily_data": _daily_entries("", _daily_rows(_bounds(period, now), None))}


@remembered
def versions_and_countries(period: str, now: datetime) -> dict[str, Any]:
    """Calls per version and per country over every tool (tool_detail's, summed), with shares of all calls."""
    span = _bounds(period, now)
    whole = _totals(_tool_rows(span))["calls"]
    return {
        "period": period,
        "versions": _shares(VersionDaily, VersionDaily.version, None, span, whole, "version"),
        "countries": _shares(CountryDaily, CountryDaily.country, None, span, whole, "country"),
    }


@remembered
def performance(period: str, now: datetime) -> dict[str, Any]:
    span = _bounds(period, now)
    totals = _totals(_tool_rows(span))
    histogram = _fetch(
        LatencyDaily.select(LatencyDaily.bucket, fn.SUM(LatencyDaily.calls))
        .where(LatencyDaily.day.between(*span))
        .group_by(LatencyDaily.bucket)
        .tuples()
    )

    def pct(fraction: float) -> float | None:
        value = percentile_from_histogram(histogram, fraction)
        return None if value is None else round(value, 3)

    services = _fetch(
        ServiceDaily.select(ServiceDaily.service, fn.SUM(ServiceDaily.calls))
        .where(ServiceDaily.day.between(*span))
        .group_by(ServiceDaily.service)
        .order_by(fn.SUM(ServiceDaily.calls).desc(), ServiceDaily.service)
        .tuples()
    )
    return {
        "period": period,
        "response_times": {
            "avg_ms": _mean(totals["rt_sum"], totals["timed"]),
            "p50_ms": pct(0.50),
            "p95_ms": pct(0.95),
            "p99_ms": pct(0.99),
        },
        "cache_performance": {
            "hit_rate": _rate(totals["hits"], totals["hits"] + totals["misses"]),
            "total_hits": totals["hits"],
            "total_misses": totals["misses"],
        },
        "service_distribution": {service: calls for service, calls in services},
    }
