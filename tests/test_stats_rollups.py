"""Each tool's latency histogram read from spans of days, and active installs from last_seen_daily (schema version 13).

They must answer exactly what a GROUP BY of the raw events answers, for any range of days (one
ending in the past, with events after it, too); last_seen_daily must hold the sessions counted
by the UTC day they were last seen, after ingestion, after pruning, and after an upgrade from
version 12 filled both tables from what that version kept.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from tests import databases
from tests.support import KEEP_HISTORY, ROOT, current_hour, make_event
from weather_metrics.query import spans, stats
from weather_metrics.store import folds
from weather_metrics.store.db import database, execute
from weather_metrics.store.events import LATENCY_SPANS, Event, LastSeenDaily, Session, ToolLatencyDaily
from weather_metrics.store.migrate import SCHEMA_VERSION
from weather_metrics.store.pruning import prune

HOUR, DAY = 3600, 86400
TOOLS = ("get_forecast", "get_alerts", "search_location")
HISTORY = ROOT / "tests" / "schema_history"


def some_events(seed: int, count: int, days: int) -> list[dict[str, Any]]:
    """Events of several tools and a few dozen sessions at random hours of the last `days` days (and the next hour)."""
    rng = random.Random(seed)
    return [
        make_event(
            tool=rng.choice(TOOLS),
            timestamp_hour=current_hour(rng.randrange(-1, days * 24)),
            response_time_ms=rng.choice([None, 0, 3.5, rng.randint(1, 4000) / 4]),
            session_id=rng.choice([None, *(f"install-{n}" for n in range(40))]),
        )
        for _ in range(count)
    ]


def post(client, events: list[dict[str, Any]], size: int = 29) -> None:
    for start in range(0, len(events), size):
        response = client.post("/v1/events", json={"events": events[start : start + size]})
        assert response.status_code == 200, response.json


def raw_histograms(first_day: int, last_day: int, tool: str | None) -> Counter[tuple[str, int]]:
    """Calls per (tool, latency bucket) of the raw events in the UTC days [first_day, last_day]."""
    rows = Event.select(Event.timestamp_hour, Event.tool, Event.latency_bucket).tuples()
    return Counter(
        (name, bucket)
        for hour, name, bucket in rows
        if bucket is not None and first_day <= hour < last_day + DAY and tool in (None, name)
    )


def read_histograms(first_day: int, last_day: int, tool: str | None) -> Counter[tuple[str, int]]:
    read = stats._tool_histograms((first_day, last_day + DAY - 1), tool)
    return Counter({(name, bucket): calls for name, pairs in read.items() for bucket, calls in pairs})


def random_days(rng: random.Random, count: int) -> list[tuple[int, int]]:
    """Ranges of whole UTC days of 1 to 91 days, ending from 50 days ago to 70 days ahead."""
    today = int(datetime.now(UTC).timestamp()) // DAY * DAY
    ranges = []
    for _ in range(count):
        last = today + rng.randrange(-50, 70) * DAY
        ranges.append((last - rng.choice([0, 1, 3, 7, 15, 30, 63, 64, 90, rng.randrange(91)]) * DAY, last))
    return ranges


def test_histograms_over_any_days_equal_the_raw_events_grouped(make_app):
    post(make_app(**KEEP_HISTORY).test_client(), some_events(seed=13, count=700, days=100))
    rng = random.Random(5)
    beyond = 0
    with database.connection_context():
        for first_day, last_day in random_days(rng, 80):
            for tool in (None, *TOOLS):
                assert read_histograms(first_day, last_day, tool) == raw_histograms(first_day, last_day, tool), (
                    first_day,
                    last_day,
                    tool,
                )
            beyond += bool(spans.day_spans_to_end(first_day, last_day, LATENCY_SPANS)[2])
    assert beyond > 20  # most ranges take the days after their end away again


def test_the_service_adds_each_ended_day_to_the_spans_itself(client):
    post(client, some_events(seed=3, count=300, days=10))
    yesterday = int(datetime.now(UTC).timestamp()) // DAY * DAY - DAY
    deadline = time.monotonic() + 20
    with database.connection_context():
        while folds.through_day("tool_latency_spans") < yesterday:  # housekeeping runs beside the commits
            assert time.monotonic() < deadline, "the spans were not folded up to yesterday"
            time.sleep(0.05)
        assert folds.through_day("tool_latency_spans") == yesterday
        for length in LATENCY_SPANS:
            in_spans = execute("SELECT SUM(calls) FROM tool_latency_spans WHERE span = ?", (length,))
            in_days = execute("SELECT SUM(calls) FROM tool_latency_daily WHERE day <= ?", (yesterday,))
            assert in_spans.fetchone()[0] == in_days.fetchone()[0] > 100, length


def raw_installs(since: int) -> int:
    """Sessions of the raw events seen at `since` or later."""
    return len(
        {e.session_id for e in Event.select().where(Event.session_id.is_null(False), Event.timestamp_hour >= since)}
    )


def last_seen_days() -> dict[int, int]:
    """last_seen_daily without its days of 0."""
    return {day: n for day, n in LastSeenDaily.select().tuples() if n}


def sessions_by_day() -> dict[int, int]:
    return dict(Counter(last_seen // DAY * DAY for (last_seen,) in Session.select(Session.last_seen).tuples()))


def test_last_seen_daily_counts_each_session_on_the_day_it_was_last_seen(client):
    events = some_events(seed=4, count=500, days=40)
    # Oldest first: sessions move on to later days; then all again, in any order: older events move none.
    post(client, sorted(events, key=lambda e: e["timestamp_hour"]), size=31)
    post(client, events, size=17)
    today = int(datetime.now(UTC).timestamp()) // DAY * DAY
    with database.connection_context():
        assert last_seen_days() == sessions_by_day()
        assert any(n == 0 for _, n in LastSeenDaily.select().tuples())  # days all of whose sessions moved on
        for days_ago in (-1, 0, 1, 7, 30, 45):
            assert stats._active_installs((today - days_ago * DAY, today + DAY - 1)) == raw_installs(
                today - days_ago * DAY
            )
        prune(
            datetime.now(UTC) + timedelta(days=80),
            retention_days=90,
            rollup_retention_days=100,
            idempotency_ttl_hours=24,
        )
        assert 0 < len(sessions_by_day()) < len(set(e["session_id"] for e in events if e.get("session_id")))
        assert last_seen_days() == sessions_by_day()


# --- the upgrade from version 12 ------------------------------------------------------------------


def kept_histograms(daily: dict[tuple[int, str, int], int], first: int, last: int) -> Counter[tuple[str, int]]:
    """Calls per (tool, bucket) of the days [first, last] of tool_latency_daily rows."""
    out: Counter[tuple[str, int]] = Counter()
    for (day, tool, bucket), calls in daily.items():
        if first <= day <= last:
            out[tool, bucket] += calls
    return out


def test_a_version_12_database_gets_spans_and_last_seen_days_from_what_it_kept(tmp_path, make_app):
    now = int(datetime.now(UTC).timestamp())
    rng = random.Random(12)
    today = now // DAY * DAY
    # What version 12 kept: each tool's daily histograms (some days' raw events long pruned) and sessions.
    daily = {
        (today - rng.randrange(120) * DAY, rng.choice(TOOLS), rng.randrange(60, 160)): rng.randint(1, 9)
        for _ in range(400)
    }
    sessions = {f"install-{n}": now // HOUR * HOUR - rng.randrange(120 * 24) * HOUR for n in range(300)}
    location = databases.at_version(
        tmp_path / "metrics.db",
        12,
        [
            ("INSERT INTO tool_latency_daily VALUES (?, ?, ?, ?)", [(*key, n) for key, n in daily.items()]),
            ("INSERT INTO sessions VALUES (?, ?)", list(sessions.items())),
        ],
    )
    app = make_app(database=location, **KEEP_HISTORY)
    assert databases.rows(tmp_path / "metrics.db", "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    with database.connection_context():
        assert ToolLatencyDaily.select().count() == len(daily)
        for first, last in random_days(rng, 40):
            assert read_histograms(first, last, None) == kept_histograms(daily, first, last), (first, last)
        assert last_seen_days() == sessions_by_day()
        for days_ago in (0, 7, 30, 90):
            since = today - days_ago * DAY
            assert stats._active_installs((since, today + DAY - 1)) == sum(1 for t in sessions.values() if t >= since)
    post(app.test_client(), some_events(seed=9, count=200, days=3))  # ingestion goes on into both tables
    with database.connection_context():
        assert last_seen_days() == sessions_by_day()
        first = today - 89 * DAY
        assert read_histograms(first, today, None) == raw_histograms(first, today, None) + kept_histograms(
            daily, first, today
        )
