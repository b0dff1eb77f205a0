"""GET /api/metrics/agents and /api/metrics/productivity, and weather_metrics.orgmetrics.

Expected figures are worked out by hand from the raw events each test writes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support import KEEP_HISTORY, Member, assert_api_error, seed_org
from weather_metrics.accounts import organizations as accounts
from weather_metrics.core.times import zone
from weather_metrics.query import org_metrics as orgmetrics
from weather_metrics.query.scope import Scope
from weather_metrics.query.windows import parse_window
from weather_metrics.store.agents import AGENTS, agent_row
from weather_metrics.store.batches import PendingBatch, write_batches
from weather_metrics.store.models import Organization
from weather_metrics.store.productivity import PRODUCTIVITY, productivity_row

AGENTS_URL = "/api/metrics/agents"
PRODUCTIVITY_URL = "/api/metrics/productivity"


def execution(
    timestamp: str, agent: str = "reviewer", ms: float = 100.0, ok: bool = True, user: Any = None
) -> tuple[dict[str, Any], str | None]:
    item = {"agent_name": agent, "command": "run", "execution_time_ms": ms, "success": ok, "timestamp": timestamp}
    if user is not None:
        item["user_identifier"] = user.email
    return item, None if user is None else user.id


def add_executions(app, org_id: str, *executions: tuple[dict[str, Any], str | None]) -> None:
    rows = [agent_row(org_id, "batch", 0, item, user_id) for item, user_id in executions]
    with app.app_context():
        write_batches([PendingBatch(rows=rows, response={}, kind=AGENTS)])


def add_productivity(app, org_id: str, *items: dict[str, Any]) -> None:
    rows = [productivity_row(org_id, "batch", 0, item) for item in items]
    with app.app_context():
        write_batches([PendingBatch(rows=rows, response={}, kind=PRODUCTIVITY)])


def metric(timestamp: str, kind: str, value: float, user: Any = None, team: Any = None) -> dict[str, Any]:
    item: dict[str, Any] = {"timestamp": timestamp, "type": kind, "value": value}
    if user is not None:
        item["user_id"] = user.id
    if team is not None:
        item["team_id"] = team.id
    return item


def set_zone(app, org_id: str, name: str) -> None:
    with app.app_context():
        Organization.update(time_zone=name).where(Organization.id == org_id).execute()


def fetch(client, url: str, member: Member, **params: Any) -> dict[str, Any]:
    response = client.get(url, headers=member.headers, query_string=params)
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def calls(series: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(entry["period"], entry["calls"]) for entry in series]


@pytest.fixture
def app(service):  # type: ignore[no-untyped-def]
    """A copy of the shared seeded database (conftest's seeded_db), keeping data of past dates."""
    return service(**KEEP_HISTORY)


@pytest.fixture
def org_id(acme) -> str:
    return acme["admin"].user.organization_id  # type: ignore[no-any-return]


@pytest.fixture
def march(app, org_id) -> None:
    """Four executions around midnight of 2 March 2026 (UTC)."""
    add_executions(
        app,
        org_id,
        execution("2026-03-02T10:15:00+00:00", "reviewer", 100.0, True),
        execution("2026-03-02T10:45:00+00:00", "reviewer", 300.0, False),
        execution("2026-03-02T23:59:00+00:00", "writer", 50.0, True),
        execution("2026-03-03T00:00:00+00:00", "reviewer", 200.0, True),
    )


def test_day_aggregation(client, acme, march):
    body = fetch(client, AGENTS_URL, acme["admin"], start_date="2026-03-02", end_date="2026-03-04")
    assert body["window"] == {
        "start": "2026-03-02T00:00:00.000Z",
        "end": "2026-03-05T00:00:00.000Z",
        "time_zone": "UTC",
        "aggregation": "day",
    }
    totals = body["totals"]
    assert {k: totals[k] for k in ("calls", "successes", "failures", "success_rate", "avg_duration_ms")} == {
        "calls": 4,
        "successes": 3,
        "failures": 1,
        "success_rate": 0.75,
        "avg_duration_ms": 162.5,
    }
    reviewer, writer = body["agents"]
    assert (reviewer["agent_name"], reviewer["calls"], reviewer["successes"], reviewer["failures"]) == (
        "reviewer",
        3,
        2,
        1,
    )
    assert (reviewer["success_rate"], reviewer["avg_duration_ms"]) == (0.6667, 200.0)
    assert (writer["agent_name"], writer["calls"], writer["success_rate"], writer["avg_duration_ms"]) == (
        "writer",
        1,
        1.0,
        50.0,
    )
    assert body["series"] == [
        {
            "period": "2026-03-02T00:00:00+00:00",
            "calls": 3,
            "successes": 2,
            "failures": 1,
            "success_rate": 0.6667,
            "avg_duration_ms": 150.0,
        },
        {
            "period": "2026-03-03T00:00:00+00:00",
            "calls": 1,
            "successes": 1,
            "failures": 0,
            "success_rate": 1.0,
            "avg_duration_ms": 200.0,
        },
        {
            "period": "2026-03-04T00:00:00+00:00",
            "calls": 0,
            "successes": 0,
            "failures": 0,
            "success_rate": None,
            "avg_duration_ms": None,
        },
    ]
    assert body["pagination"] == {"page": 1, "limit": 100, "total": 3, "pages": 1}


def test_hour_aggregation(client, acme, march):
    body = fetch(
        client,
        AGENTS_URL,
        acme["admin"],
        start_date="2026-03-02T10:00:00Z",
        end_date="2026-03-02T12:00:00Z",
        aggregation="hour",
    )
    assert [(e["period"], e["calls"], e["failures"], e["avg_duration_ms"]) for e in body["series"]] == [
        ("2026-03-02T10:00:00+00:00", 2, 1, 200.0),
        ("2026-03-02T11:00:00+00:00", 0, 0, None),
    ]
    assert body["totals"]["calls"] == 2
    assert [a["agent_name"] for a in body["agents"]] == ["reviewer"]


def test_date_only_end_includes_its_whole_day(client, acme, march):
    body = fetch(client, AGENTS_URL, acme["admin"], start_date="2026-03-02", end_date="2026-03-02")
    assert calls(body["series"]) == [("2026-03-02T00:00:00+00:00", 3)]  # 23:59 counts, 3 March does not
    assert body["window"]["end"] == "2026-03-03T00:00:00.000Z"


def test_success_only_and_agent_name(client, acme, march):
    admin = acme["admin"]
    body = fetch(client, AGENTS_URL, admin, start_date="2026-03-02", end_date="2026-03-03", success_only="true")
    assert (body["totals"]["calls"], body["totals"]["failures"], body["totals"]["avg_duration_ms"]) == (3, 0, 116.67)
    assert body["totals"]["success_rate"] == 1.0
    # Successes took 50, 100 and 200 ms: the median is 100.
    assert body["totals"]["p50_duration_ms"] == pytest.approx(100.0, rel=0.025)
    assert calls(body["series"]) == [("2026-03-02T00:00:00+00:00", 2), ("2026-03-03T00:00:00+00:00", 1)]

    body = fetch(client, AGENTS_URL, admin, start_date="2026-03-02", end_date="2026-03-03", agent_name="writer")
    assert [a["agent_name"] for a in body["agents"]] == ["writer"]
    assert (body["totals"]["calls"], body["totals"]["avg_duration_ms"]) == (1, 50.0)
    assert body["totals"]["p99_duration_ms"] == pytest.approx(50.0, rel=0.025)
    assert calls(body["series"]) == [("2026-03-02T00:00:00+00:00", 1), ("2026-03-03T00:00:00+00:00", 0)]

    body = fetch(client, AGENTS_URL, admin, start_date="2026-03-02", end_date="2026-03-03", success_only="0")
    assert body["totals"]["calls"] == 4


def test_percentiles_within_histogram_error(client, acme, app, org_id):
    # "slow": 10, 20, ..., 2000 ms (200 runs); "fast": 200 runs of 5 ms.
    slow = [execution("2026-03-02T12:00:00+00:00", "slow", 10.0 * i) for i in range(1, 201)]
    fast = [execution("2026-03-02T13:00:00+00:00", "fast", 5.0) for _ in range(200)]
    add_executions(app, org_id, *slow, *fast)
    body = fetch(client, AGENTS_URL, acme["admin"], start_date="2026-03-02", end_date="2026-03-02")
    agents = {a["agent_name"]: a for a in body["agents"]}
    # Nearest rank of 200 values: p50 is the 100th (1000 ms), p95 the 190th, p99 the 198th.
    assert agents["slow"]["p50_duration_ms"] == pytest.approx(1000.0, rel=0.025)
    assert agents["slow"]["p95_duration_ms"] == pytest.approx(1900.0, rel=0.025)
    assert agents["slow"]["p99_duration_ms"] == pytest.approx(1980.0, rel=0.025)
    assert agents["fast"]["p99_duration_ms"] == pytest.approx(5.0, rel=0.025)
    # All 400: the 200th is the last 5 ms run, the 380th is 1800 ms, the 396th 1960 ms.
    assert body["totals"]["p50_duration_ms"] == pytest.approx(5.0, rel=0.025)
    assert body["totals"]["p95_duration_ms"] == pytest.approx(1800.0, rel=0.025)
    assert body["totals"]["p99_duration_ms"] == pytest.approx(1960.0, rel=0.025)
    assert body["totals"]["avg_duration_ms"] == 505.0  # (201000 + 1000) / 400
    assert [a["agent_name"] for a in body["agents"]] == ["fast", "slow"]  # equal calls: by name


def test_week_periods_start_monday_in_the_org_zone(client, acme, app, org_id):
    set_zone(app, org_id, "Europe/Berlin")
    add_executions(
        app,
        org_id,
        execution("2026-03-01T23:30:00+00:00"),  # Monday 2 March 00:30 in Berlin
        execution("2026-03-08T22:30:00+00:00"),  # Sunday 8 March 23:30
        execution("2026-03-08T23:30:00+00:00"),  # Monday 9 March 00:30
        execution("2026-03-29T21:30:00+00:00"),  # Sunday 29 March 23:30 (summer time since 02:00)
        execution("2026-03-29T22:30:00+00:00"),  # Monday 30 March 00:30 CEST
    )
    body = fetch(client, AGENTS_URL, acme["admin"], start_date="2026-03-02", end_date="2026-04-05", aggregation="week")
    assert calls(body["series"]) == [
        ("2026-03-02T00:00:00+01:00", 2),
        ("2026-03-09T00:00:00+01:00", 1),
        ("2026-03-16T00:00:00+01:00", 0),
        ("2026-03-23T00:00:00+01:00", 1),
        ("2026-03-30T00:00:00+02:00", 1),
    ]
    assert body["window"]["start"] == "2026-03-01T23:00:00.000Z"
    assert body["window"]["end"] == "2026-04-05T22:00:00.000Z"
    assert body["window"]["time_zone"] == "Europe/Berlin"


def test_month_periods(client, acme, app, org_id):
    add_executions(app, org_id, execution("2026-01-31T23:30:00+00:00"), execution("2026-02-01T00:30:00+00:00"))
    body = fetch(client, AGENTS_URL, acme["admin"], start_date="2026-01-01", end_date="2026-02-28", aggregation="month")
    assert calls(body["series"]) == [("2026-01-01T00:00:00+00:00", 1), ("2026-02-01T00:00:00+00:00", 1)]


def test_org_time_zone_moves_events_to_the_local_day(client, acme, app, org_id):
    set_zone(app, org_id, "America/New_York")
    add_executions(
        app,
        org_id,
        execution("2026-03-03T03:00:00+00:00"),  # 2 March 22:00 EST
        execution("2026-03-09T03:30:00+00:00"),  # 8 March 23:30 EDT (clocks went forward that night)
        execution("2026-03-09T04:30:00+00:00"),  # 9 March 00:30 EDT
    )
    admin = acme["admin"]
    body = fetch(client, AGENTS_URL, admin, start_date="2026-03-02", end_date="2026-03-03")
    assert calls(body["series"]) == [("2026-03-02T00:00:00-05:00", 1), ("2026-03-03T00:00:00-05:00", 0)]
    assert body["window"]["start"] == "2026-03-02T05:00:00.000Z"
    body = fetch(client, AGENTS_URL, admin, start_date="2026-03-07", end_date="2026-03-09")
    assert calls(body["series"]) == [
        ("2026-03-07T00:00:00-05:00", 0),
        ("2026-03-08T00:00:00-05:00", 1),
        ("2026-03-09T00:00:00-04:00", 1),
    ]


def test_repeated_hour_of_a_dst_change_is_two_periods(client, acme, app, org_id):
    set_zone(app, org_id, "America/New_York")
    add_executions(
        app, org_id, execution("2025-11-02T05:10:00+00:00"), *[execution("2025-11-02T06:10:00+00:00")] * 2
    )  # 01:10 EDT, then 01:10 EST twice
    body = fetch(
        client,
        AGENTS_URL,
        acme["admin"],
        start_date="2025-11-02T01:00:00-04:00",
        end_date="2025-11-02T02:00:00-05:00",
        aggregation="hour",
    )
    assert calls(body["series"]) == [("2025-11-02T01:00:00-04:00", 1), ("2025-11-02T01:00:00-05:00", 2)]


def test_half_hour_zone_day_is_one_period(app, org_id):
    with app.app_context():
        window = parse_window("2026-03-02", "2026-03-02", "day", zone("Asia/Kolkata"), datetime.now(UTC), 400)
    assert [p.isoformat() for p in window.periods()] == ["2026-03-02T00:00:00+05:30"]


def test_series_pagination(client, acme, app, org_id):
    add_executions(app, org_id, execution("2026-03-02T01:30:00+00:00"), execution("2026-03-02T22:30:00+00:00"))
    query = {"start_date": "2026-03-02", "end_date": "2026-03-02", "aggregation": "hour", "limit": 10}
    first = fetch(client, AGENTS_URL, acme["admin"], **query)
    assert first["pagination"] == {"page": 1, "limit": 10, "total": 24, "pages": 3}
    assert [e["calls"] for e in first["series"]] == [0, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    assert first["series"][0]["period"] == "2026-03-02T00:00:00+00:00"
    last = fetch(client, AGENTS_URL, acme["admin"], page=3, **query)
    assert calls(last["series"]) == [
        ("2026-03-02T20:00:00+00:00", 0),
        ("2026-03-02T21:00:00+00:00", 0),
        ("2026-03-02T22:00:00+00:00", 1),
        ("2026-03-02T23:00:00+00:00", 0),
    ]
    assert last["totals"]["calls"] == 2  # totals cover the whole window on every page
    beyond = fetch(client, AGENTS_URL, acme["admin"], page=4, **query)
    assert beyond["series"] == [] and beyond["pagination"]["pages"] == 3


def test_default_window_is_the_last_30_days(client, acme, app, org_id):
    recent = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    old = (datetime.now(UTC) - timedelta(days=40)).isoformat()
    add_executions(app, org_id, execution(recent), execution(old))
    body = fetch(client, AGENTS_URL, acme["admin"])
    assert body["totals"]["calls"] == 1
    assert body["window"]["aggregation"] == "day"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start_date": "2026-03-05", "end_date": "2026-03-02"}, "start_date"),
        ({"start_date": "2025-01-01", "end_date": "2026-03-01"}, "end_date"),  # over 400 days
        ({"start_date": "yesterday"}, "start_date"),
        ({"aggregation": "year"}, "aggregation"),
        ({"success_only": "yes"}, "success_only"),
        ({"page": "0"}, "page"),
        ({"page": "two"}, "page"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"agent_name": ""}, "agent_name"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_agent_queries(client, acme, params, field):
    error = assert_api_error(client.get(AGENTS_URL, headers=acme["admin"].headers, query_string=params), 400)
    assert field in error["details"], error


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"metric_type": "Commits"}, "metric_type"),
        ({"metric_type": "commits!"}, "metric_type"),
        ({"aggregation": "fortnight"}, "aggregation"),
        ({"end_date": "2026-13-01"}, "end_date"),
        ({"limit": "-5"}, "limit"),
    ],
)
def test_bad_productivity_queries(client, acme, params, field):
    error = assert_api_error(client.get(PRODUCTIVITY_URL, headers=acme["admin"].headers, query_string=params), 400)
    assert field in error["details"], error


def test_range_limit_follows_the_setting(make_app):
    app = make_app(metrics_max_range_days=30)
    people = seed_org(app, "Short")
    client = app.test_client()
    admin = people["admin"]
    assert fetch(client, AGENTS_URL, admin, start_date="2026-03-01", end_date="2026-03-30")["pagination"]["total"] == 30
    too_long = client.get(
        AGENTS_URL, headers=admin.headers, query_string={"start_date": "2026-03-01", "end_date": "2026-03-31"}
    )
    assert "end_date" in assert_api_error(too_long, 400)["details"]


@pytest.mark.parametrize("url", [AGENTS_URL, PRODUCTIVITY_URL])
def test_needs_a_token(client, url):
    assert_api_error(client.get(url), 401)


@pytest.fixture
def people(app, acme, org_id, globex) -> dict[str, Any]:
    """Acme plus a teammate of the manager ("mate"), a team "Core" (manager lead, mate), and a second org."""
    passwords = app.extensions["weather_metrics"].passwords
    with app.app_context():
        mate, _ = accounts.create_user(org_id, "mate@acme.test", "Mate", "developer", passwords)
        team = accounts.create_team(org_id, "Core", "")
        accounts.add_member(team, acme["manager"].user, "lead")
        accounts.add_member(team, mate, "member")
    return {**acme, "mate": mate, "team": team, "other": globex}


@pytest.fixture
def scoped_executions(app, org_id, people) -> None:
    """Powers of two per person, so every sum says exactly whose executions it holds."""
    at = "2026-03-02T12:00:00+00:00"
    runs = [(people["developer"].user, 1), (people["mate"], 2), (people["manager"].user, 4), (None, 8)]
    runs.append((people["admin"].user, 16))
    add_executions(app, org_id, *[execution(at, user=user) for user, n in runs for _ in range(n)])
    other = people["other"]["developer"].user
    add_executions(app, other.organization_id, *[execution(at, user=other)] * 32)


def agent_calls(client, member: Member, **params: Any) -> int:
    body = fetch(client, AGENTS_URL, member, start_date="2026-03-02", end_date="2026-03-02", **params)
    return body["totals"]["calls"]  # type: ignore[no-any-return]


def test_each_role_sees_its_scope(client, people, scoped_executions):
    assert agent_calls(client, people["admin"]) == 31  # everyone, and the unmatched 8
    assert agent_calls(client, people["developer"]) == 1
    assert agent_calls(client, people["manager"]) == 6  # mate and themselves, not the developer
    assert agent_calls(client, people["other"]["admin"]) == 32


def test_narrowing_to_a_user_or_team(client, people, scoped_executions):
    admin, manager, developer = people["admin"], people["manager"], people["developer"]
    assert agent_calls(client, admin, user_id=developer.user.id) == 1
    assert agent_calls(client, admin, user_id=admin.user.id) == 16
    assert agent_calls(client, admin, team_id=people["team"].id) == 6
    assert agent_calls(client, manager, user_id=people["mate"].id) == 2
    assert agent_calls(client, manager, team_id=people["team"].id) == 6
    assert agent_calls(client, developer, user_id=developer.user.id) == 1
    # No single user's scope holds the 8 unmatched executions.
    users = (developer.user, people["mate"], manager.user, admin.user)
    assert sum(agent_calls(client, admin, user_id=user.id) for user in users) == 23


@pytest.mark.parametrize("url", [AGENTS_URL, PRODUCTIVITY_URL])
def test_out_of_scope_is_403_and_foreign_is_404(client, people, url):
    developer, manager = people["developer"], people["manager"]
    foreign = people["other"]["developer"].user.id

    def status(member: Member, **params: Any) -> int:
        return client.get(url, headers=member.headers, query_string=params).status_code

    assert_api_error(client.get(url, headers=developer.headers, query_string={"user_id": people["mate"].id}), 403)
    assert status(developer, user_id=manager.user.id) == 403
    assert status(developer, team_id=people["team"].id) == 403
    assert status(manager, user_id=developer.user.id) == 403
    assert_api_error(client.get(url, headers=people["admin"].headers, query_string={"user_id": foreign}), 404)
    assert status(developer, user_id=foreign) == 404
    assert status(manager, team_id="no-such-team") == 404


def test_empty_scope_is_all_zeros(app, org_id, march):
    with app.app_context():
        window = parse_window("2026-03-02", "2026-03-02", "day", zone("UTC"), datetime.now(UTC), 400)
        body = orgmetrics.agent_metrics(Scope(org_id, frozenset(), frozenset()), window)
    assert body["agents"] == []
    assert body["totals"] == {
        "calls": 0,
        "successes": 0,
        "failures": 0,
        "success_rate": None,
        "avg_duration_ms": None,
        "p50_duration_ms": None,
        "p95_duration_ms": None,
        "p99_duration_ms": None,
    }
    assert calls(body["series"]) == [("2026-03-02T00:00:00+00:00", 0)]


@pytest.fixture
def productivity(app, org_id, people) -> None:
    developer, mate, team = people["developer"].user, people["mate"], people["team"]
    add_productivity(
        app,
        org_id,
        metric("2026-03-02T09:00:00+00:00", "commits", 3, user=developer),
        metric("2026-03-02T15:00:00+00:00", "commits", 5, user=developer),
        metric("2026-03-03T10:00:00+00:00", "commits", 2, user=developer),
        metric("2026-03-02T11:00:00+00:00", "commits", 7, user=mate),
        metric("2026-03-02T12:00:00+00:00", "deployments", 1, team=team),
        metric("2026-03-03T13:00:00+00:00", "deployments", 4, team=team),
        metric("2026-03-03T14:00:00+00:00", "lines_added", 120.5, user=developer),
    )
    other = people["other"]["admin"].user
    add_productivity(app, other.organization_id, metric("2026-03-02T09:00:00+00:00", "commits", 100, user=other))


def figures(samples: int, total: float, avg: float, low: float, high: float) -> dict[str, Any]:
    return {"samples": samples, "sum": total, "avg": avg, "min": low, "max": high}


def read_productivity(client, member: Member, **params: Any) -> dict[str, Any]:
    return fetch(client, PRODUCTIVITY_URL, member, start_date="2026-03-02", end_date="2026-03-03", **params)


def test_productivity_by_period_and_type(client, people, productivity):
    body = read_productivity(client, people["admin"])
    assert body["totals"] == [
        {"metric_type": "commits", **figures(4, 17.0, 4.25, 2.0, 7.0)},
        {"metric_type": "deployments", **figures(2, 5.0, 2.5, 1.0, 4.0)},
        {"metric_type": "lines_added", **figures(1, 120.5, 120.5, 120.5, 120.5)},
    ]
    assert body["series"] == [
        {
            "period": "2026-03-02T00:00:00+00:00",
            "metrics": {"commits": figures(3, 15.0, 5.0, 3.0, 7.0), "deployments": figures(1, 1.0, 1.0, 1.0, 1.0)},
        },
        {
            "period": "2026-03-03T00:00:00+00:00",
            "metrics": {
                "commits": figures(1, 2.0, 2.0, 2.0, 2.0),
                "deployments": figures(1, 4.0, 4.0, 4.0, 4.0),
                "lines_added": figures(1, 120.5, 120.5, 120.5, 120.5),
            },
        },
    ]
    assert body["pagination"] == {"page": 1, "limit": 100, "total": 2, "pages": 1}


def test_productivity_scopes_and_filter(client, people, productivity):
    manager = read_productivity(client, people["manager"])  # mate's commits and the team's deployments
    assert manager["totals"] == [
        {"metric_type": "commits", **figures(1, 7.0, 7.0, 7.0, 7.0)},
        {"metric_type": "deployments", **figures(2, 5.0, 2.5, 1.0, 4.0)},
    ]
    developer = read_productivity(client, people["developer"])
    assert developer["totals"] == [
        {"metric_type": "commits", **figures(3, 10.0, 3.3333, 2.0, 5.0)},
        {"metric_type": "lines_added", **figures(1, 120.5, 120.5, 120.5, 120.5)},
    ]
    commits = read_productivity(client, people["admin"], metric_type="commits", aggregation="month")
    assert commits["totals"] == [{"metric_type": "commits", **figures(4, 17.0, 4.25, 2.0, 7.0)}]
    assert commits["series"] == [
        {"period": "2026-03-01T00:00:00+00:00", "metrics": {"commits": figures(4, 17.0, 4.25, 2.0, 7.0)}}
    ]
    team = read_productivity(client, people["admin"], team_id=people["team"].id)
    assert [t["metric_type"] for t in team["totals"]] == ["commits", "deployments"]
    empty = read_productivity(client, people["admin"], metric_type="focus_minutes")
    assert empty["totals"] == [] and [e["metrics"] for e in empty["series"]] == [{}, {}]


def test_metric_types_and_org_zone(app, org_id, people, productivity):
    set_zone(app, org_id, "Europe/Berlin")
    with app.app_context():
        assert orgmetrics.metric_types(org_id) == ["commits", "deployments", "lines_added"]
        assert orgmetrics.metric_types(people["other"]["admin"].user.organization_id) == ["commits"]
        assert orgmetrics.org_zone(org_id) == zone("Europe/Berlin")
        assert orgmetrics.org_zone(people["other"]["admin"].user.organization_id) == zone("UTC")


def recent_days(client, member: Member, days: int) -> dict[str, Any]:
    today = datetime.now(UTC).date()
    start = (today - timedelta(days=days)).isoformat()
    return fetch(client, AGENTS_URL, member, start_date=start, end_date=today.isoformat())


def test_executions_arriving_for_past_days_show_up(client, acme, app, org_id):
    ten_days_ago = (datetime.now(UTC) - timedelta(days=10)).replace(hour=12).isoformat()
    add_executions(app, org_id, execution(ten_days_ago, ms=100.0))
    assert recent_days(client, acme["admin"], 20)["totals"]["calls"] == 1
    add_executions(app, org_id, execution(ten_days_ago, ms=300.0))  # a late batch for the same day
    body = recent_days(client, acme["admin"], 20)
    assert (body["totals"]["calls"], body["totals"]["avg_duration_ms"]) == (2, 200.0)
    assert body["totals"]["p99_duration_ms"] == pytest.approx(300.0, rel=0.025)


def test_window_spanning_past_days_and_today_adds_up(client, acme, app, org_id):
    five_days_ago = (datetime.now(UTC) - timedelta(days=5)).isoformat()
    now = datetime.now(UTC).isoformat()
    add_executions(app, org_id, execution(five_days_ago, ms=100.0), execution(now, ms=300.0, ok=False))
    for _ in range(2):  # the second time, the days before yesterday come from what the first kept
        body = recent_days(client, acme["admin"], 6)
        assert [(a["agent_name"], a["calls"], a["failures"], a["avg_duration_ms"]) for a in body["agents"]] == [
            ("reviewer", 2, 1, 200.0)
        ]
        assert body["totals"]["p50_duration_ms"] == pytest.approx(100.0, rel=0.025)
        assert body["totals"]["p99_duration_ms"] == pytest.approx(300.0, rel=0.025)
        assert sum(entry["calls"] for entry in body["series"]) == 2


def test_pruning_rollups_is_seen_by_the_next_query(app, client, acme, org_id):
    """Cached results of settled days must not outlive the rollups pruning drops."""
    from weather_metrics.store.pruning import prune

    old = (datetime.now(UTC) - timedelta(days=10)).replace(hour=12, minute=0, second=0, microsecond=0)
    add_executions(app, org_id, execution(old.isoformat()), execution(old.isoformat(), ok=False))
    params = {"start_date": (old - timedelta(days=1)).date().isoformat(), "end_date": old.date().isoformat()}
    assert fetch(client, AGENTS_URL, acme["admin"], **params)["totals"]["calls"] == 2  # now cached
    with app.app_context():
        # Raw rows stay (their ids do not move); only the rollups of that day go.
        prune(datetime.now(UTC), retention_days=30, rollup_retention_days=5, idempotency_ttl_hours=24)
    assert fetch(client, AGENTS_URL, acme["admin"], **params)["totals"]["calls"] == 0


def test_pruned_ids_reused_by_new_rows_do_not_leave_stale_results(app, client, acme, org_id):
    """Raw ids are reused after pruning the newest row; the cache keys on them, so pruning clears it."""
    from weather_metrics.store.pruning import prune

    recent = (datetime.now(UTC) - timedelta(days=5)).replace(hour=12, minute=0, second=0, microsecond=0)
    add_executions(app, org_id, execution(recent.isoformat()))  # id 1
    add_executions(app, org_id, execution((recent - timedelta(days=25)).isoformat()))  # id 2, pruned below
    params = {"start_date": (recent - timedelta(days=1)).date().isoformat(), "end_date": recent.date().isoformat()}
    assert fetch(client, AGENTS_URL, acme["admin"], **params)["totals"]["calls"] == 1  # now cached
    with app.app_context():
        prune(datetime.now(UTC), retention_days=20, rollup_retention_days=400, idempotency_ttl_hours=24)
    add_executions(app, org_id, execution(recent.isoformat()))  # takes id 2 again
    assert fetch(client, AGENTS_URL, acme["admin"], **params)["totals"]["calls"] == 2
