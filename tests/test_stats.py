"""GET /v1/stats/*: every figure checked against a by-hand computation over the posted events."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support import current_hour, make_event
from weather_metrics.core.histogram import latency_bucket
from weather_metrics.query import stats
from weather_metrics.store import folds
from weather_metrics.store.db import database
from weather_metrics.store.events import (
    CountryDaily,
    ErrorDaily,
    Event,
    LatencyDaily,
    ServiceDaily,
    Session,
    ToolHourly,
    ToolLatencyDaily,
    ToolLatencySpans,
    VersionDaily,
)
from weather_metrics.store.pruning import prune

PERIOD_DAYS = {"7d": 7, "30d": 30, "90d": 90}
HOUR, DAY = 3600, 86400
SPANS = (4, 16, 64)  # days of tool_latency_spans' spans
# Hours ago the events happened: today and this week, 10-12 days ago (30d, not 7d),
# 40 and 62 days ago (90d only).
RECENT_HOURS = (0, 1, 2, 5, 23, 30, 49, 75, 130, 160)
OLDER_HOURS = (240, 250, 300)
OLDEST_HOURS = (960, 1500)


# --- the events -------------------------------------------------------------------------


def seed_events() -> list[dict[str, Any]]:
    """A fixed mix of tools, versions, countries, services, statuses, caches and sessions."""
    rng = random.Random(20251112)
    events = []
    for hours_ago in RECENT_HOURS + OLDER_HOURS + OLDEST_HOURS:
        for _ in range(rng.randint(6, 16)):
            status = "error" if rng.random() < 0.25 else "success"
            response_time = rng.choice(
                [None, 0, 12.5, rng.randint(20, 90), rng.randint(100, 400), rng.randint(400, 3000)]
            )
            events.append(
                make_event(
                    tool=rng.choice(["get_forecast"] * 5 + ["get_current_conditions"] * 3),
                    version=rng.choice(["1.0.0", "1.0.0", "1.1.0", "2.0.0-beta.1"]),
                    status=status,
                    timestamp_hour=current_hour(hours_ago),
                    analytics_level=rng.choice(["minimal", "standard", "detailed"]),
                    response_time_ms=response_time,
                    service=rng.choice(["noaa", "noaa", "openmeteo", None]),
                    cache_hit=rng.choice([True, True, False, None]),
                    country=rng.choice(["US", "US", "CA", "GB", "de", None]),
                    error_type=rng.choice(["NetworkError", "TimeoutError", "RateLimitError", None])
                    if status == "error"
                    else None,
                    session_id=rng.choice(["sess-a", "sess-b", "sess-c", f"sess-{hours_ago}", None]),
                )
            )
    # A tool seen only 10 days ago (in 30d, not in 7d), and one seen only 40 days ago.
    events += [
        make_event(
            tool="get_alerts",
            timestamp_hour=current_hour(240),
            response_time_ms=95,
            service="openmeteo",
            country="CA",
            cache_hit=False,
            version="1.1.0",
            session_id="sess-alerts",
        ),
        make_event(
            tool="get_alerts",
            timestamp_hour=current_hour(250),
            status="error",
            error_type="NetworkError",
            response_time_ms=None,
            cache_hit=None,
        ),
        make_event(tool="search_location", timestamp_hour=current_hour(960), version="0.9.0", country="FR"),
        # An error without a type counts as "unknown"; a success with an error type is no error.
        make_event(status="error", error_type=None, timestamp_hour=current_hour(3)),
        make_event(status="success", error_type="NetworkError", timestamp_hour=current_hour(1)),
    ]
    return events


def post_all(client, events: list[dict[str, Any]], sizes=(37, 100, 1, 63)) -> None:
    """Post in batches of varied size, so the rollups are built up over several commits."""
    start, turn = 0, 0
    while start < len(events):
        size = sizes[turn % len(sizes)]
        response = client.post("/v1/events", json={"events": events[start : start + size]})
        assert response.status_code == 200, response.json
        assert response.json["count"] == len(events[start : start + size])
        start, turn = start + size, turn + 1


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return seed_events()


@pytest.fixture
def seeded(client, events):
    post_all(client, events)
    return client


# --- the expected figures, by hand ------------------------------------------------------


def moment(event: dict[str, Any]) -> datetime:
    return datetime.strptime(event["timestamp_hour"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def window(period: str, now: datetime | None = None) -> tuple[datetime, datetime]:
    now = now or datetime.now(UTC)
    today = datetime(now.year, now.month, now.day, tzinfo=UTC)
    return today - timedelta(days=PERIOD_DAYS[period]), today + timedelta(days=1) - timedelta(milliseconds=1)


def in_period(events: list[dict[str, Any]], period: str, since: datetime | None = None) -> list[dict[str, Any]]:
    start = max(window(period)[0], since) if since else window(period)[0]
    return [e for e in events if moment(e) >= start]


def iso_ms(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def timed(events: list[dict[str, Any]]) -> list[float]:
    return [e["response_time_ms"] for e in events if e.get("response_time_ms") is not None]


def mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 1) if values else None


def is_error(event: dict[str, Any]) -> bool:
    return event["status"] == "error"


def bucketed(value: float) -> float:
    """What a percentile of `value` reads as: the geometric middle of its bucket, 5% wide (core/histogram.py)."""
    if value <= 0:
        return 0.0
    bucket = math.floor(math.log(value) / math.log(1.05))
    return round(1.05 ** (bucket + 0.5), 3)


def percentile(values: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile, as its bucket reports it."""
    return bucketed(nearest_rank(values, fraction)) if values else None


def day_entry(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "calls": len(events),
        "success_rate": rate(sum(not is_error(e) for e in events), len(events)),
        "avg_response_time_ms": mean(timed(events)),
    }


def tool_entry(name: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": name, **day_entry(events), "p95_ms": percentile(timed(events), 0.95)}


def by(events: list[dict[str, Any]], key) -> dict[Any, list[dict[str, Any]]]:
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        groups[key(event)].append(event)
    return groups


def expected_tools(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [tool_entry(name, group) for name, group in by(events, lambda e: e["tool"]).items()]


def expected_errors(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    failed = [e for e in events if is_error(e)]
    return [
        {
            "type": kind,
            "count": len(group),
            "percentage": rate(len(group), len(failed)),
            "last_seen": iso_ms(max(moment(e) for e in group)),
        }
        for kind, group in by(failed, lambda e: e.get("error_type") or "unknown").items()
    ]


def nearest_rank(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def shares(events: list[dict[str, Any]], field: str, label: str, whole: int) -> list[dict[str, Any]]:
    counts = Counter(e[field].upper() if field == "country" else e[field] for e in events if e.get(field))
    return [{label: key, "calls": calls, "percentage": rate(calls, whole)} for key, calls in counts.items()]


def assert_ranked(actual: list[dict[str, Any]], expected: list[dict[str, Any]], key: str, count: str) -> None:
    """Same entries, listed by `count`, largest first."""
    assert sorted(actual, key=lambda x: x[key]) == sorted(expected, key=lambda x: x[key])
    counts = [entry[count] for entry in actual]
    assert counts == sorted(counts, reverse=True)


# --- endpoints --------------------------------------------------------------------------


@pytest.mark.parametrize("period", PERIOD_DAYS)
def test_overview(seeded, events, period):
    body = seeded.get(f"/v1/stats/overview?period={period}").json
    chosen = in_period(events, period)
    start, end = window(period)
    hits = sum(e.get("cache_hit") is True for e in chosen)
    misses = sum(e.get("cache_hit") is False for e in chosen)
    assert set(body) == {"period", "start_date", "end_date", "summary", "tools", "errors", "cache_hit_rate"}
    assert body["period"] == period
    assert body["start_date"] == iso_ms(start)
    assert body["end_date"] == iso_ms(end)
    assert body["start_date"].endswith("T00:00:00.000Z") and body["end_date"].endswith("T23:59:59.999Z")
    assert body["summary"] == {
        "total_calls": len(chosen),
        "unique_versions": len({e["version"] for e in chosen}),
        "active_installs": len({e["session_id"] for e in chosen if e.get("session_id")}),
        "success_rate": rate(sum(not is_error(e) for e in chosen), len(chosen)),
        "avg_response_time_ms": mean(timed(chosen)),
    }
    assert_ranked(body["tools"], expected_tools(chosen), "name", "calls")
    assert_ranked(body["errors"], expected_errors(chosen), "type", "count")
    assert body["cache_hit_rate"] == rate(hits, hits + misses)


@pytest.mark.parametrize("period", PERIOD_DAYS)
def test_tools(seeded, events, period):
    body = seeded.get(f"/v1/stats/tools?period={period}").json
    assert body["period"] == period
    assert_ranked(body["tools"], expected_tools(in_period(events, period)), "name", "calls")
    assert body["tools"] == seeded.get(f"/v1/stats/overview?period={period}").json["tools"]


@pytest.mark.parametrize("period", PERIOD_DAYS)
def test_tool_detail(seeded, events, period):
    chosen = in_period(events, period)
    for name, group in by(chosen, lambda e: e["tool"]).items():
        response = seeded.get(f"/v1/stats/tool/{name}?period={period}")
        assert response.status_code == 200
        body = response.json
        assert body["tool"] == name and body["period"] == period
        assert body["summary"] == tool_entry(name, group)
        times = timed(group)
        assert body["response_times"] == {
            "avg_ms": mean(times),
            "p50_ms": percentile(times, 0.50),
            "p95_ms": percentile(times, 0.95),
            "p99_ms": percentile(times, 0.99),
        }
        if times:  # within half a bucket of the exact figure
            assert body["response_times"]["p95_ms"] == pytest.approx(nearest_rank(times, 0.95), rel=0.025, abs=0.001)
        # Whatever the grouping, the daily series adds up to the summary and stays in the period.
        assert sum(d["calls"] for d in body["daily_data"]) == len(group)
        assert {d["date"] for d in body["daily_data"]} == {moment(e).strftime("%Y-%m-%d") for e in group}
        assert_ranked(body["versions"], shares(group, "version", "version", len(group)), "version", "calls")
        assert_ranked(body["countries"], shares(group, "country", "country", len(group)), "country", "calls")


def two_hours_of_yesterday() -> tuple[str, str, str]:
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    return yesterday.isoformat(), f"{yesterday.isoformat()}T03:00:00Z", f"{yesterday.isoformat()}T15:00:00Z"


def test_daily_data_has_one_entry_per_utc_date(client):
    date, morning, afternoon = two_hours_of_yesterday()
    post_all(
        client,
        [
            make_event(timestamp_hour=morning, response_time_ms=100),
            make_event(timestamp_hour=afternoon, response_time_ms=200, status="error", error_type="NetworkError"),
            make_event(timestamp_hour=afternoon, response_time_ms=None),
            make_event(timestamp_hour=current_hour(0), response_time_ms=50),
        ],
    )
    body = client.get("/v1/stats/tool/get_forecast?period=7d").json
    today = datetime.now(UTC).date().isoformat()
    assert body["daily_data"] == [
        {"date": date, "calls": 3, "success_rate": 0.6667, "avg_response_time_ms": 150.0},
        {"date": today, "calls": 1, "success_rate": 1.0, "avg_response_time_ms": 50.0},
    ]


@pytest.mark.parametrize("period", PERIOD_DAYS)
def test_daily_data_of_the_seeded_events(seeded, events, period):
    for name, group in by(in_period(events, period), lambda e: e["tool"]).items():
        body = seeded.get(f"/v1/stats/tool/{name}?period={period}").json
        daily = by(group, lambda e: moment(e).strftime("%Y-%m-%d"))
        assert body["daily_data"] == [{"date": date, **day_entry(daily[date])} for date in sorted(daily)]


@pytest.mark.parametrize("period", PERIOD_DAYS)
def test_every_tool_together_per_day_is_the_sum_of_the_tools_series(seeded, events, period):
    """stats.daily (the / page's chart) adds up what /v1/stats/tool/<name> answers for each tool."""
    chosen = in_period(events, period)
    summed: Counter[str] = Counter()
    for name in by(chosen, lambda e: e["tool"]):
        detail = seeded.get(f"/v1/stats/tool/{name}?period={period}").json
        summed.update({d["date"]: d["calls"] for d in detail["daily_data"]})
    with seeded.application.app_context():
        body = stats.daily(period, datetime.now(UTC))
    daily = by(chosen, lambda e: moment(e).strftime("%Y-%m-%d"))
    assert body["daily_data"] == [{"date": date, **day_entry(daily[date])} for date in sorted(daily)]
    assert {d["date"]: d["calls"] for d in body["daily_data"]} == dict(summed)


@pytest.mark.parametrize("period", PERIOD_DAYS)
def test_versions_and_countries_of_every_tool_sum_the_tools_shares(seeded, events, period):
    """stats.versions_and_countries (the / page's tables) adds up each tool's versions and countries."""
    chosen = in_period(events, period)
    with seeded.application.app_context():
        body = stats.versions_and_countries(period, datetime.now(UTC))
    assert_ranked(body["versions"], shares(chosen, "version", "version", len(chosen)), "version", "calls")
    assert_ranked(body["countries"], shares(chosen, "country", "country", len(chosen)), "country", "calls")
    details = [seeded.get(f"/v1/stats/tool/{name}?period={period}").json for name in by(chosen, lambda e: e["tool"])]
    for label, key in (("versions", "version"), ("countries", "country")):
        summed: Counter[str] = Counter()
        for detail in details:
            summed.update({row[key]: row["calls"] for row in detail[label]})
        assert {row[key]: row["calls"] for row in body[label]} == dict(summed)


def test_tool_detail_country_share_counts_calls_without_a_country(seeded, events):
    body = seeded.get("/v1/stats/tool/get_forecast?period=90d").json
    assert sum(c["calls"] for c in body["countries"]) < body["summary"]["calls"]
    assert sum(v["calls"] for v in body["versions"]) == body["summary"]["calls"]
    assert {c["country"] for c in body["countries"]} <= {"US", "CA", "GB", "DE"}  # "de" is stored as DE
    assert "DE" in {c["country"] for c in body["countries"]}


@pytest.mark.parametrize(
    ("tool", "period"), [("get_alerts", "7d"), ("search_location", "30d"), ("no_such_tool", "90d")]
)
def test_tool_without_data_in_period_is_not_found(seeded, tool, period):
    response = seeded.get(f"/v1/stats/tool/{tool}?period={period}")
    assert response.status_code == 404
    assert response.json == {"error": "not_found", "details": f"Tool '{tool}' not found or has no data"}


@pytest.mark.parametrize("period", PERIOD_DAYS)
def test_errors(seeded, events, period):
    body = seeded.get(f"/v1/stats/errors?period={period}").json
    assert body["period"] == period
    expected = expected_errors(in_period(events, period))
    assert_ranked(body["errors"], expected, "type", "count")
    assert "unknown" in {e["type"] for e in body["errors"]}
    assert body["errors"] == seeded.get(f"/v1/stats/overview?period={period}").json["errors"]


@pytest.mark.parametrize("period", PERIOD_DAYS)
def test_performance(seeded, events, period):
    body = seeded.get(f"/v1/stats/performance?period={period}").json
    chosen = in_period(events, period)
    times = timed(chosen)
    hits = sum(e.get("cache_hit") is True for e in chosen)
    misses = sum(e.get("cache_hit") is False for e in chosen)
    assert body["period"] == period
    assert body["response_times"]["avg_ms"] == mean(times)
    for key, fraction in (("p50_ms", 0.50), ("p95_ms", 0.95), ("p99_ms", 0.99)):
        exact = nearest_rank(times, fraction)
        assert body["response_times"][key] == pytest.approx(exact, rel=0.05, abs=0.001), key
    assert body["cache_performance"] == {
        "hit_rate": rate(hits, hits + misses),
        "total_hits": hits,
        "total_misses": misses,
    }
    assert body["service_distribution"] == dict(Counter(e["service"] for e in chosen if e.get("service")))


def test_an_event_ten_days_old_counts_for_30d_not_7d(client):
    post_all(
        client,
        [
            make_event(
                tool="get_alerts",
                timestamp_hour=current_hour(240),
                session_id="old",
                status="error",
                error_type="TimeoutError",
                service="openmeteo",
            )
        ],
    )
    week = client.get("/v1/stats/overview?period=7d").json
    month = client.get("/v1/stats/overview?period=30d").json
    assert week["summary"]["total_calls"] == 0
    assert week["summary"]["active_installs"] == 0
    assert week["tools"] == [] and week["errors"] == []
    assert month["summary"]["total_calls"] == 1
    assert month["summary"]["active_installs"] == 1
    assert [t["name"] for t in month["tools"]] == ["get_alerts"]
    assert [e["type"] for e in month["errors"]] == ["TimeoutError"]
    assert client.get("/v1/stats/performance?period=7d").json["service_distribution"] == {}
    assert client.get("/v1/stats/performance?period=30d").json["service_distribution"] == {"openmeteo": 1}


def test_active_installs_are_distinct_sessions_seen_in_the_period(client):
    post_all(
        client,
        [
            make_event(session_id="both", timestamp_hour=current_hour(240)),
            make_event(session_id="both", timestamp_hour=current_hour(1)),
            make_event(session_id="both", timestamp_hour=current_hour(2)),
            make_event(session_id="recent", timestamp_hour=current_hour(3)),
            make_event(session_id="old", timestamp_hour=current_hour(250)),
            make_event(session_id="older", timestamp_hour=current_hour(960)),
            make_event(),  # no session
        ],
    )
    installs = {p: client.get(f"/v1/stats/overview?period={p}").json["summary"]["active_installs"] for p in PERIOD_DAYS}
    assert installs == {"7d": 2, "30d": 3, "90d": 4}


def test_last_seen_is_the_latest_hour_of_that_error(client):
    post_all(
        client,
        [
            make_event(status="error", error_type="NetworkError", timestamp_hour=current_hour(2)),
            make_event(status="error", error_type="NetworkError", timestamp_hour=current_hour(50)),
            make_event(status="error", error_type="NetworkError", timestamp_hour=current_hour(5)),
        ],
    )
    # A batch of older events arriving later must not move last_seen back.
    post_all(client, [make_event(status="error", error_type="NetworkError", timestamp_hour=current_hour(70))])
    (entry,) = client.get("/v1/stats/errors?period=7d").json["errors"]
    assert entry == {
        "type": "NetworkError",
        "count": 4,
        "percentage": 1.0,
        "last_seen": current_hour(2).replace(":00Z", ":00.000Z"),
    }


def test_events_after_end_date_are_not_counted(client):
    post_all(
        client,
        [
            make_event(timestamp_hour=current_hour(0)),
            make_event(timestamp_hour=current_hour(72), status="error", error_type="NetworkError"),
        ],
    )
    two_days_ago = datetime.now(UTC) - timedelta(days=2)
    with database.connection_context():
        overview = stats.overview("7d", two_days_ago)
    assert overview["end_date"] == iso_ms(window("7d", two_days_ago)[1])
    assert overview["summary"]["total_calls"] == 1


def test_default_period_is_30d(seeded):
    for path in ("overview", "tools", "errors", "performance", "tool/get_forecast"):
        default = seeded.get(f"/v1/stats/{path}").json
        assert default == seeded.get(f"/v1/stats/{path}?period=30d").json
        assert default["period"] == "30d"


@pytest.mark.parametrize("path", ["overview", "tools", "errors", "performance", "tool/get_forecast"])
def test_unknown_period_is_rejected(seeded, path):
    response = seeded.get(f"/v1/stats/{path}?period=365d")
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"


def test_stats_of_an_empty_service(client):
    overview = client.get("/v1/stats/overview").json
    assert overview["summary"]["total_calls"] == 0
    assert overview["summary"]["active_installs"] == 0
    assert overview["summary"]["unique_versions"] == 0
    assert overview["tools"] == [] and overview["errors"] == []
    performance = client.get("/v1/stats/performance").json
    assert performance["cache_performance"]["total_hits"] == 0
    assert performance["service_distribution"] == {}


# --- retention ----------------------------------------------------------------------------


def snapshot(client) -> dict[tuple[str, str], Any]:
    paths = ["overview", "tools", "errors", "performance", "tool/get_forecast", "tool/get_current_conditions"]
    return {
        (path, period): client.get(f"/v1/stats/{path}?period={period}").json for path in paths for period in PERIOD_DAYS
    }


def raw_event_hours() -> list[int]:
    with database.connection_context():
        return sorted(e.timestamp_hour for e in Event.select(Event.timestamp_hour))


def test_stats_survive_pruning_of_raw_events(seeded, events):
    before = snapshot(seeded)
    with database.connection_context():
        prune(
            datetime.now(UTC) + timedelta(days=100),
            retention_days=90,
            rollup_retention_days=400,
            idempotency_ttl_hours=24,
        )
    assert raw_event_hours() == []
    assert snapshot(seeded) == before


def test_prune_deletes_raw_events_older_than_retention_only(seeded, events):
    now = datetime.now(UTC)
    with database.connection_context():
        prune(now + timedelta(days=85), retention_days=90, rollup_retention_days=400, idempotency_ttl_hours=24)
    cutoff = int((now - timedelta(days=5)).timestamp()) // HOUR * HOUR
    kept = sorted(int(moment(e).timestamp()) for e in events if moment(e).timestamp() >= cutoff)
    assert raw_event_hours() == kept
    assert 0 < len(kept) < len(events)


def test_prune_deletes_rollups_older_than_rollup_retention(seeded, events):
    now = datetime.now(UTC)
    with database.connection_context():
        # Rollups from before 20 days ago go: the 40- and 62-day-old events leave the 90d figures.
        prune(now + timedelta(days=380), retention_days=90, rollup_retention_days=400, idempotency_ttl_hours=24)
    cutoff = datetime.fromtimestamp(int((now - timedelta(days=20)).timestamp()) // DAY * DAY, UTC)
    chosen = in_period(events, "90d", since=cutoff)
    assert len(chosen) < len(in_period(events, "90d"))
    overview = seeded.get("/v1/stats/overview?period=90d").json
    assert overview["summary"]["total_calls"] == len(chosen)
    assert overview["summary"]["unique_versions"] == len({e["version"] for e in chosen})
    assert overview["summary"]["active_installs"] == len({e["session_id"] for e in chosen if e.get("session_id")})
    assert_ranked(overview["tools"], expected_tools(chosen), "name", "calls")
    assert_ranked(overview["errors"], expected_errors(chosen), "type", "count")
    assert seeded.get("/v1/stats/tool/search_location?period=90d").status_code == 404
    performance = seeded.get("/v1/stats/performance?period=90d").json
    assert performance["service_distribution"] == dict(Counter(e["service"] for e in chosen if e.get("service")))
    # The 30-day figures lie wholly inside rollup retention and do not change.
    assert seeded.get("/v1/stats/overview?period=30d").json["summary"]["total_calls"] == len(in_period(events, "30d"))


# --- rollups against the raw events ---------------------------------------------------------


def recomputed_rollups() -> dict[str, dict[tuple, tuple]]:
    """Every rollup table, recomputed in Python from the raw events table."""
    tool_hourly: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, 0.0, 0, 0])
    latency: Counter[tuple] = Counter()
    tool_latency: Counter[tuple] = Counter()
    tool_latency_spans: Counter[tuple] = Counter()
    versions: Counter[tuple] = Counter()
    countries: Counter[tuple] = Counter()
    services: Counter[tuple] = Counter()
    errors: dict[tuple, list] = defaultdict(lambda: [0, 0])
    sessions: dict[tuple, int] = {}
    with database.connection_context():
        rows: list[dict[str, Any]] = list(Event.select().dicts())  # type: ignore[arg-type]
        through = folds.through_day("tool_latency_spans")  # the spans hold the days up to it
    for row in rows:
        hour, tool = row["timestamp_hour"], row["tool"]
        day = hour - hour % DAY
        figures = tool_hourly[(hour, tool)]
        figures[0] += 1
        figures[1] += int(row["is_error"])
        if row["response_time_ms"] is not None:
            assert row["latency_bucket"] == latency_bucket(row["response_time_ms"])
            figures[2] += 1
            figures[3] += row["response_time_ms"]
            latency[(day, row["latency_bucket"])] += 1
            tool_latency[(day, tool, row["latency_bucket"])] += 1
            for length in SPANS if day <= through else ():
                tool_latency_spans[(length, hour - hour % (length * DAY), tool, row["latency_bucket"])] += 1
        figures[4] += row["cache_hit"] is True
        figures[5] += row["cache_hit"] is False
        versions[(day, tool, row["version"])] += 1
        if row["country"] is not None:
            countries[(day, tool, row["country"])] += 1
        if row["service"] is not None:
            services[(day, row["service"])] += 1
        if row["is_error"]:
            entry = errors[(day, row["error_type"] or "unknown")]
            entry[0] += 1
            entry[1] = max(entry[1], hour)
        if row["session_id"] is not None:
            sessions[(row["session_id"],)] = max(sessions.get((row["session_id"],), 0), hour)
    return {
        "tool_hourly": {k: tuple(v) for k, v in tool_hourly.items()},
        "latency_daily": {k: (v,) for k, v in latency.items()},
        "tool_latency_daily": {k: (v,) for k, v in tool_latency.items()},
        "tool_latency_spans": {k: (v,) for k, v in tool_latency_spans.items()},
        "version_daily": {k: (v,) for k, v in versions.items()},
        "country_daily": {k: (v,) for k, v in countries.items()},
        "service_daily": {k: (v,) for k, v in services.items()},
        "error_daily": {k: tuple(v) for k, v in errors.items()},
        "sessions": {k: (v,) for k, v in sessions.items()},
    }


def stored_rollups() -> dict[str, dict[tuple, tuple]]:
    def table(model, key, values) -> dict[tuple, tuple]:
        return {tuple(r[:key]): tuple(r[key:]) for r in model.select(*values).tuples()}

    with database.connection_context():
        return {
            "tool_hourly": table(
                ToolHourly,
                2,
                [
                    ToolHourly.hour,
                    ToolHourly.tool,
                    ToolHourly.calls,
                    ToolHourly.errors,
                    ToolHourly.timed_calls,
                    ToolHourly.response_time_sum,
                    ToolHourly.cache_hits,
                    ToolHourly.cache_misses,
                ],
            ),
            "latency_daily": table(LatencyDaily, 2, [LatencyDaily.day, LatencyDaily.bucket, LatencyDaily.calls]),
            "tool_latency_daily": table(
                ToolLatencyDaily,
                3,
                [ToolLatencyDaily.day, ToolLatencyDaily.tool, ToolLatencyDaily.bucket, ToolLatencyDaily.calls],
            ),
            "tool_latency_spans": table(
                ToolLatencySpans,
                4,
                [
                    ToolLatencySpans.span,
                    ToolLatencySpans.start,
                    ToolLatencySpans.tool,
                    ToolLatencySpans.bucket,
                    ToolLatencySpans.calls,
                ],
            ),
            "version_daily": table(
                VersionDaily, 3, [VersionDaily.day, VersionDaily.tool, VersionDaily.version, VersionDaily.calls]
            ),
            "country_daily": table(
                CountryDaily, 3, [CountryDaily.day, CountryDaily.tool, CountryDaily.country, CountryDaily.calls]
            ),
            "service_daily": table(ServiceDaily, 2, [ServiceDaily.day, ServiceDaily.service, ServiceDaily.calls]),
            "error_daily": table(
                ErrorDaily, 2, [ErrorDaily.day, ErrorDaily.error_type, ErrorDaily.errors, ErrorDaily.last_seen]
            ),
            "sessions": table(Session, 1, [Session.session_id, Session.last_seen]),
        }


DAILY_TABLES = ("latency_daily", "tool_latency_daily", "version_daily", "country_daily", "service_daily", "error_daily")


def by_day(rollups: dict[str, dict[tuple, tuple]]) -> dict[str, dict[tuple, tuple]]:
    """Daily tables re-added per day of their `day` column (it should hold days already)."""
    out = dict(rollups)
    for name in DAILY_TABLES:
        merged: dict[tuple, tuple] = {}
        for key, figures in rollups[name].items():
            day_key = (key[0] - key[0] % DAY, *key[1:])
            if day_key in merged and name == "error_daily":
                errors, last_seen = merged[day_key]
                merged[day_key] = (errors + figures[0], max(last_seen, figures[1]))
            elif day_key in merged:
                merged[day_key] = (merged[day_key][0] + figures[0],)
            else:
                merged[day_key] = figures
        out[name] = merged
    return out


def test_daily_rollups_hold_one_row_per_day(client):
    _date, morning, afternoon = two_hours_of_yesterday()
    post_all(
        client,
        [
            make_event(timestamp_hour=morning, status="error", error_type="NetworkError"),
            make_event(timestamp_hour=afternoon, status="error", error_type="NetworkError"),
        ],
    )
    fold_from_scratch(datetime.now(UTC))
    stored = stored_rollups()
    assert len(stored["tool_hourly"]) == 2
    for name in DAILY_TABLES:
        assert len(stored[name]) == 1, name
        assert all(key[0] % DAY == 0 for key in stored[name]), name
    assert sorted((length, start % (length * DAY)) for length, start, *_ in stored["tool_latency_spans"]) == [
        (length, 0) for length in SPANS
    ]


@pytest.mark.parametrize("folded_days_ago", [None, 30, 1, -12])
def test_each_tool_s_histogram_reads_whole_spans_and_the_days_around_them(seeded, folded_days_ago):
    """Wherever a period starts and ends against the spans, its spans and other days add up to its days, once each.

    The periods end from 40 days ago to 23 days ahead: some leave events out at either end.
    The spans hold no day, the days up to 30 days ago, up to yesterday, or up to 12 days
    ahead (as a host whose clock runs ahead would fold them).
    """
    if folded_days_ago is None:
        with database.connection_context():
            database.execute_sql("DELETE FROM tool_latency_spans")
            database.execute_sql("UPDATE span_folds SET through_day = -86400")
    else:
        fold_from_scratch(datetime.now(UTC) - timedelta(days=folded_days_ago - 1))
    with database.connection_context():
        rows = list(Event.select(Event.timestamp_hour, Event.tool, Event.latency_bucket).tuples())
        for days_later in range(-40, 24):
            now = datetime.now(UTC) + timedelta(days=days_later)
            for period, tool in itertools.product(PERIOD_DAYS, (None, "get_forecast")):
                start, end = (int(moment.timestamp()) for moment in window(period, now))
                by_hand: Counter[tuple[str, int]] = Counter(
                    (name, bucket)
                    for hour, name, bucket in rows
                    if bucket is not None and start <= hour <= end and tool in (None, name)
                )
                read = stats._tool_histograms((start, end), tool)
                assert {(name, b): calls for name, pairs in read.items() for b, calls in pairs} == by_hand, (
                    now,
                    period,
                )


def assert_rollups_equal_a_recomputation() -> dict[str, dict[tuple, tuple]]:
    # The day columns are compared after adding up per day: see test_daily_rollups_hold_one_row_per_day.
    expected, actual = recomputed_rollups(), by_day(stored_rollups())
    assert set(actual) == set(expected)
    for name in expected:
        assert set(actual[name]) == set(expected[name]), name
        for key, figures in expected[name].items():
            assert actual[name][key] == pytest.approx(figures), (name, key)
    return actual


def fold_from_scratch(now: datetime) -> None:
    """Empty the spans, then fold every day that has ended by `now` (its clock) into them."""
    with database.connection_context():
        database.execute_sql("DELETE FROM tool_latency_spans")
        database.execute_sql("UPDATE span_folds SET through_day = -86400")
        assert folds.fold(now)
        assert folds.through_day("tool_latency_spans") == int(now.timestamp()) // DAY * DAY - DAY
        assert not folds.fold(now)  # nothing more has ended


def test_rollups_equal_a_recomputation_from_raw_events(client, events):
    # Newest events first, so later batches bring older hours to sessions and error types already seen.
    ordered = sorted(events, key=moment, reverse=True)
    post_all(client, ordered, sizes=(50, 7, 100, 33))
    post_all(client, events[:40], sizes=(13,))  # the same keys again: the rollups add up
    actual = assert_rollups_equal_a_recomputation()
    assert sum(f[0] for f in actual["tool_hourly"].values()) == len(events) + 40
    # Folded up to 20 days ago, then late events for folded days and later ones: the writer
    # adds the folded days' to the spans itself, the fold adds the others when they end.
    fold_from_scratch(datetime.now(UTC) - timedelta(days=20))
    assert_rollups_equal_a_recomputation()
    post_all(client, events[::3], sizes=(29,))
    assert_rollups_equal_a_recomputation()
    fold_from_scratch(datetime.now(UTC))
    post_all(client, events[1::5], sizes=(17,))
    actual = assert_rollups_equal_a_recomputation()
    assert len(actual["tool_latency_spans"]) > 100
