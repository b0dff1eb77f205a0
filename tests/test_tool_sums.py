"""Per-tool sums read as whole days from tool_daily and edge hours from tool_hourly (schema version 11).

They must answer exactly what summing tool_hourly hour by hour answers, for any range; tool_daily
must hold what a GROUP BY of the raw events per day and tool gives, after ingestion, after
pruning, and after an upgrade from version 10 filled it from tool_hourly.
"""

from __future__ import annotations

import random
import sqlite3
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from peewee import fn

from tests import databases
from tests.support import ROOT, current_hour, make_event
from weather_metrics.query import stats, tool_sums
from weather_metrics.store.db import database
from weather_metrics.store.events import Event, ToolDaily, ToolHourly
from weather_metrics.store.migrate import SCHEMA_VERSION
from weather_metrics.store.pruning import prune

HOUR, DAY = 3600, 86400
TOOLS = ("get_forecast", "get_alerts", "get_current_conditions", "search_location")
HISTORY = ROOT / "tests" / "schema_history"
Figures = tuple[Any, ...]  # calls, errors, timed calls, response time sum, cache hits, cache misses


def some_events(seed: int, count: int, days: int) -> list[dict[str, Any]]:
    """Events of several tools at random hours of the last `days` days.

    Response times are multiples of 1/4 ms: their sums are exact whatever order they are added in,
    so the two ways of summing must agree to the last bit.
    """
    rng = random.Random(seed)
    return [
        make_event(
            tool=rng.choice(TOOLS),
            timestamp_hour=current_hour(rng.randrange(days * 24)),
            status=rng.choice(["success", "success", "error"]),
            response_time_ms=rng.choice([None, 0, 0.25, 12.5, rng.randint(1, 4000) / 4]),
            cache_hit=rng.choice([True, False, None]),
        )
        for _ in range(count)
    ]


def post(client, events: list[dict[str, Any]], size: int = 37) -> None:
    for start in range(0, len(events), size):
        response = client.post("/v1/events", json={"events": events[start : start + size]})
        assert response.status_code == 200, response.json


# --- the hourly path, as /v1/stats summed before tool_daily -------------------------------------


def hourly_per_tool(span: tuple[int, int]) -> list[dict[str, Any]]:
    sums = [fn.SUM(getattr(ToolHourly, c)) for c in tool_sums._COLUMNS]
    query = (
        ToolHourly.select(ToolHourly.tool, *sums)
        .where(ToolHourly.hour.between(*span))
        .group_by(ToolHourly.tool)
        .order_by(sums[0].desc(), ToolHourly.tool)
    )
    return [dict(zip(("tool", *tool_sums.SUMS), row, strict=True)) for row in database.execute(query).fetchall()]


def hourly_per_day(span: tuple[int, int], tool: str | None) -> list[dict[str, Any]]:
    where = ToolHourly.hour.between(*span)
    if tool is not None:
        where &= ToolHourly.tool == tool
    days: dict[int, list[Any]] = {}
    for row in ToolHourly.select().where(where).order_by(ToolHourly.hour):
        into = days.setdefault(row.hour // DAY * DAY, [0] * 6)
        for index, column in enumerate(tool_sums._COLUMNS):
            into[index] += getattr(row, column)
    return [{"day": day, **dict(zip(tool_sums.SUMS, sums, strict=True))} for day, sums in sorted(days.items())]


def random_spans(rng: random.Random, count: int) -> list[tuple[int, int]]:
    """Ranges of seconds whose ends fall anywhere in a day: minutes into an hour, mid-day, or on midnight."""
    now = int(datetime.now(UTC).timestamp())
    spans = []
    for _ in range(count):
        start = now - rng.randrange(24 * DAY)
        if rng.random() < 0.2:
            start = start // DAY * DAY
        spans.append((start, start + rng.choice([0, 59, HOUR, 5 * HOUR, DAY, 3 * DAY + 7, rng.randrange(20 * DAY)])))
    return spans


def test_sums_over_ranges_ending_anywhere_equal_the_hourly_sums(client):
    post(client, some_events(seed=16, count=600, days=22))
    rng = random.Random(11)
    spans = random_spans(rng, 60)
    today = int(datetime.now(UTC).timestamp()) // DAY * DAY
    spans += [stats._bounds(period, datetime.now(UTC)) for period in stats.PERIODS]  # the periods: whole days
    spans += [(today + 90 * 60, today + 100 * 60), (today, today - 1)]  # inside one hour; empty
    read_days = read_hours = 0
    with database.connection_context():
        for span in spans:
            days, hours = tool_sums.split(span)
            read_days, read_hours = read_days + bool(days), read_hours + bool(hours)
            assert tool_sums.per_tool(span) == hourly_per_tool(span), span
            for tool in (None, *TOOLS):
                assert tool_sums.per_day(span, tool) == hourly_per_day(span, tool), (span, tool)
    assert read_days > 20 and read_hours > 20  # most ranges read both tables


def test_a_period_of_whole_days_reads_no_hours():
    for period in stats.PERIODS:
        days, hours = tool_sums.split(stats._bounds(period, datetime(2026, 3, 5, 17, 20, tzinfo=UTC)))
        assert hours == [] and len(days) == 1
        assert (days[0][1] - days[0][0]) // DAY + 1 == stats.PERIODS[period] + 1


# --- tool_daily against the raw events --------------------------------------------------------------


def grouped_events(since: int = 0) -> dict[tuple[int, str], Figures]:
    """tool_daily as a GROUP BY of the raw events per UTC day and tool would give it."""
    groups: dict[tuple[int, str], list[Any]] = defaultdict(lambda: [0, 0, 0, 0.0, 0, 0])
    for event in Event.select().where(Event.timestamp_hour >= since):
        figures = groups[event.timestamp_hour // DAY * DAY, event.tool]
        figures[0] += 1
        figures[1] += int(event.is_error)
        if event.response_time_ms is not None:
            figures[2] += 1
            figures[3] += event.response_time_ms
        figures[4] += event.cache_hit is True
        figures[5] += event.cache_hit is False
    return {key: tuple(figures) for key, figures in groups.items()}


def stored(model: Any, start: Any) -> dict[tuple[int, str], Figures]:
    """A per-tool sums table, each row re-added per UTC day (tool_daily's rows are days already)."""
    out: dict[tuple[int, str], list[Any]] = {}
    for row in model.select().tuples():
        into = out.setdefault((row[0] // DAY * DAY, row[1]), [0] * 6)
        for index, value in enumerate(row[2:]):
            into[index] += value
    assert start in (ToolDaily.day, ToolHourly.hour)
    return {key: tuple(figures) for key, figures in out.items()}


def test_tool_daily_equals_the_raw_events_grouped_after_ingestion_and_after_pruning(client):
    events = some_events(seed=3, count=400, days=30)
    post(client, sorted(events, key=lambda e: e["timestamp_hour"], reverse=True), size=23)
    post(client, events[:50], size=50)  # days and tools already there: the sums add up
    now = datetime.now(UTC)
    with database.connection_context():
        assert len(ToolDaily.select()) == len({(k, t) for k, t in grouped_events()})
        assert stored(ToolDaily, ToolDaily.day) == grouped_events()
        assert stored(ToolHourly, ToolHourly.hour) == grouped_events()
        # Rollups of days before 10 days ago go; the raw events are kept 90 days.
        prune(now + timedelta(days=20), retention_days=90, rollup_retention_days=30, idempotency_ttl_hours=24)
        cutoff = int((now - timedelta(days=10)).timestamp()) // DAY * DAY
        kept = grouped_events(since=cutoff)
        assert 0 < len(kept) < len(grouped_events())
        assert stored(ToolDaily, ToolDaily.day) == kept
        assert stored(ToolHourly, ToolHourly.hour) == kept


# --- the upgrade from version 10 ------------------------------------------------------------------

VERSION_10_HOURLY = (  # what version 10's writer folded into tool_hourly
    "INSERT INTO tool_hourly (hour, tool, calls, errors, timed_calls, response_time_sum, cache_hits, cache_misses)"
    " SELECT timestamp_hour, tool, COUNT(*), SUM(is_error), COUNT(response_time_ms),"
    " COALESCE(SUM(response_time_ms), 0), SUM(CASE WHEN cache_hit = 1 THEN 1 ELSE 0 END),"
    " SUM(CASE WHEN cache_hit = 0 THEN 1 ELSE 0 END) FROM events GROUP BY timestamp_hour, tool"
)


def version_10_database(path, statements: list[tuple[str, list[tuple[Any, ...]]]]) -> str:
    """A database as release 10 created it on the run's backend, given `statements`; its `database` setting."""
    if not databases.ON_POSTGRESQL:
        with sqlite3.connect(path) as conn:
            conn.executescript((HISTORY / "v10.sql").read_text())
            for sql, params in [("INSERT INTO schema_version (version) VALUES (10)", [()]), *statements]:
                conn.executemany(sql, params)
        conn.close()
        return str(path)
    from tests.test_postgresql import fresh_schema_url, psycopg2_connect
    from weather_metrics.store.db import pyformat

    location = fresh_schema_url(path)
    with psycopg2_connect(location) as conn, conn.cursor() as cursor:
        cursor.execute((HISTORY / "postgresql" / "v10.sql").read_text())
        for sql, params in [("INSERT INTO schema_version (version) VALUES (10)", [()]), *statements]:
            cursor.executemany(pyformat(sql), params)
    conn.close()
    return location


def version_10_events(now: int) -> list[tuple[Any, ...]]:
    rng = random.Random(10)
    return [
        (
            now,
            now // HOUR * HOUR - rng.randrange(25 * 24) * HOUR,
            rng.choice(TOOLS),
            rng.choice([0, 0, 1]),
            rng.choice([None, 12.5, rng.randint(1, 800) / 4]),
            rng.choice([None, 0, 1]),
        )
        for _ in range(300)
    ]


def test_a_version_10_database_gets_tool_daily_from_its_hourly_sums_and_keeps_its_data(tmp_path, make_app):
    now = int(datetime.now(UTC).timestamp())
    events = version_10_events(now)
    path = tmp_path / "metrics.db"
    # An old day whose raw events were pruned keeps its hourly rows only: its day comes from them.
    pruned_hour = (now // DAY - 40) * DAY + 5 * HOUR, "get_alerts", 4, 1, 3, 30.5, 2, 1
    location = version_10_database(
        path,
        [
            (
                "INSERT INTO events (received_at, timestamp_hour, tool, is_error, response_time_ms, cache_hit,"
                " version, analytics_level) VALUES (?, ?, ?, ?, ?, ?, '1.0.0', 'standard')",
                events,
            ),
            (VERSION_10_HOURLY, [()]),
            ("INSERT INTO tool_hourly VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [pruned_hour]),
        ],
    )
    app = make_app(database=location)
    assert databases.rows(path, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    assert databases.rows(path, "SELECT COUNT(*) FROM events") == [(300,)]
    with database.connection_context():
        hourly = stored(ToolHourly, ToolHourly.hour)
        assert stored(ToolDaily, ToolDaily.day) == hourly
        assert sum(figures[0] for figures in hourly.values()) == 300 + 4
        from_events = dict(hourly)
        del from_events[pruned_hour[0] // DAY * DAY, "get_alerts"]
        assert grouped_events() == from_events
        span = stats._bounds("90d", datetime.now(UTC))
        assert tool_sums.per_tool(span) == hourly_per_tool(span)
        assert stats.overview.__wrapped__("90d", datetime.now(UTC))["summary"]["total_calls"] == 304  # type: ignore[attr-defined]
    post(app.test_client(), some_events(seed=12, count=100, days=3))  # ingestion goes on into both tables
    with database.connection_context():
        assert stored(ToolDaily, ToolDaily.day) == stored(ToolHourly, ToolHourly.hour)
        assert sum(figures[0] for figures in stored(ToolDaily, ToolDaily.day).values()) == 300 + 4 + 100
