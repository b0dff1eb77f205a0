"""/api/analytics: productivity trends (growth, series, insights) and team comparison."""

from __future__ import annotations

import time
from typing import Any

import pytest
from flask import Flask

from tests.support import KEEP_HISTORY, Member, assert_api_error, current_hour
from weather_metrics.accounts import organizations as accounts
from weather_metrics.query.analytics import find_anomalies
from weather_metrics.store.agents import AGENTS, agent_row
from weather_metrics.store.batches import PendingBatch, write_batches
from weather_metrics.store.productivity import PRODUCTIVITY, productivity_row

TRENDS = "/api/analytics/productivity-trends"
COMPARISON = "/api/analytics/team-comparison"
WEEK = {"start_date": "2025-03-01", "end_date": "2025-03-07"}  # previous period: 2025-02-22 .. 02-28


def add_productivity(app: Flask, org_id: str, *items: tuple[str, str, float] | dict[str, Any]) -> None:
    """Store productivity metrics: (type, timestamp, value) tuples or whole items."""
    rows = []
    for item in items:
        if isinstance(item, tuple):
            item = {"type": item[0], "timestamp": item[1], "value": item[2]}
        rows.append(productivity_row(org_id, "batch", int(time.time()), item))
    with app.app_context():
        write_batches([PendingBatch(rows=rows, response={}, kind=PRODUCTIVITY)])


def add_executions(app: Flask, org_id: str, user_id: str | None, *runs: tuple[str, float, bool]) -> None:
    """Store agent executions of one user: (timestamp, duration ms, success) tuples."""
    rows = [
        agent_row(
            org_id,
            "batch",
            int(time.time()),
            {"agent_name": "coder", "command": "run", "execution_time_ms": ms, "success": ok, "timestamp": at},
            user_id,
        )
        for at, ms, ok in runs
    ]
    with app.app_context():
        write_batches([PendingBatch(rows=rows, response={}, kind=AGENTS)])


@pytest.fixture
def app(service):  # type: ignore[no-untyped-def]
    """A copy of the shared seeded database (conftest's seeded_db), keeping data of past dates."""
    return service(**KEEP_HISTORY)


def trends(client: Any, member: Member, **params: str) -> dict[str, Any]:
    response = client.get(TRENDS, query_string=params, headers=member.headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def by_type(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["metric_type"]: m for m in body["metrics"]}


def insights(body: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [i for i in body["insights"] if i["kind"] == kind]


# --- Productivity trends ---------------------------------------------------------------------


def test_totals_growth_series_and_insights_against_the_previous_period(app, client, acme):
    org = acme["admin"].user.organization_id
    add_productivity(
        app,
        org,
        ("commits", "2025-02-23T10:00:00Z", 60),
        ("commits", "2025-02-25T10:00:00Z", 60),
        ("commits", "2025-03-02T10:00:00Z", 100),
        ("commits", "2025-03-05T23:59:00Z", 70),
        ("commits", "2025-02-21T23:00:00Z", 1000),  # before both periods
        ("commits", "2025-03-08T00:00:00Z", 1000),  # after the end date
        ("code_reviews", "2025-02-24T09:00:00Z", 40),
        ("code_reviews", "2025-03-03T09:00:00Z", 30),
        ("tasks_completed", "2025-02-28T09:00:00Z", 10),
        ("tasks_completed", "2025-03-01T00:00:00Z", 12),
        ("deployments", "2025-03-06T12:00:00Z", 5),
    )
    user = acme["developer"].user.id
    add_executions(app, org, user, ("2025-02-27T08:00:00Z", 100, True), ("2025-02-27T09:00:00Z", 100, False))
    add_executions(app, org, None, ("2025-03-04T08:00:00Z", 100, True), ("2025-03-04T08:30:00Z", 100, True))

    body = trends(client, acme["admin"], **WEEK)

    assert body["period"] == {
        "start": "2025-03-01T00:00:00.000Z",
        "end": "2025-03-08T00:00:00.000Z",
        "time_zone": "UTC",
        "aggregation": "day",
    }
    assert body["comparison"] == {"start": "2025-02-22T00:00:00.000Z", "end": "2025-03-01T00:00:00.000Z"}
    metrics = by_type(body)
    assert [m["metric_type"] for m in body["metrics"]] == [
        "code_reviews",
        "commits",
        "deployments",
        "tasks_completed",
        "agent_executions",
    ]
    commits = metrics["commits"]
    assert (commits["total"], commits["previous_total"], commits["change"]) == (170, 120, 50)
    assert commits["growth_rate"] == pytest.approx(0.4167)
    assert [p["total"] for p in commits["series"]] == [0, 100, 0, 0, 70, 0, 0]
    assert commits["series"][0]["period"] == "2025-03-01T00:00:00+00:00"
    assert commits["series"][6]["period"] == "2025-03-07T00:00:00+00:00"
    assert (metrics["code_reviews"]["total"], metrics["code_reviews"]["growth_rate"]) == (30, -0.25)
    assert metrics["tasks_completed"]["growth_rate"] == 0.2
    assert metrics["deployments"]["previous_total"] == 0 and metrics["deployments"]["growth_rate"] is None
    assert metrics["deployments"]["change"] == 5
    agents = metrics["agent_executions"]
    assert (agents["total"], agents["previous_total"], agents["growth_rate"]) == (2, 2, 0)

    (rise,) = insights(body, "largest_increase")
    assert rise["metric_type"] == "commits"
    assert rise["message"] == "commits rose 42% (120 → 170) against the previous period."
    assert (rise["total"], rise["previous_total"]) == (170, 120)
    (fall,) = insights(body, "largest_decrease")
    assert fall["message"] == "code_reviews fell 25% (40 → 30) against the previous period."
    (new,) = insights(body, "new")
    assert new["metric_type"] == "deployments"
    assert new["message"] == "deployments is new: 5 against 0 in the previous period."
    assert not insights(body, "no_data") and not insights(body, "anomaly")


def test_an_explicit_interval_and_the_previous_year_as_comparison(app, client, acme):
    org = acme["admin"].user.organization_id
    add_productivity(
        app,
        org,
        ("commits", "2025-01-10T10:00:00Z", 20),
        ("commits", "2025-01-31T23:00:00Z", 5),
        ("commits", "2025-02-01T00:00:00Z", 999),  # after the interval's end date
        ("commits", "2024-03-04T12:00:00Z", 40),
        ("commits", "2025-03-03T12:00:00Z", 30),
    )
    body = trends(client, acme["admin"], comparison_period="2025-01-01/2025-01-31", **WEEK)
    assert body["comparison"] == {"start": "2025-01-01T00:00:00.000Z", "end": "2025-02-01T00:00:00.000Z"}
    commits = by_type(body)["commits"]
    assert (commits["total"], commits["previous_total"], commits["growth_rate"]) == (30, 25, 0.2)
    assert insights(body, "largest_increase")[0]["message"] == (
        "commits rose 20% (25 → 30) against 2025-01-01 to 2025-01-31."
    )

    body = trends(client, acme["admin"], comparison_period="previous_year", **WEEK)
    assert body["comparison"] == {"start": "2024-03-01T00:00:00.000Z", "end": "2024-03-08T00:00:00.000Z"}
    commits = by_type(body)["commits"]
    assert (commits["previous_total"], commits["growth_rate"]) == (40, -0.25)
    assert "against the same period a year earlier" in insights(body, "largest_decrease")[0]["message"]

    body = trends(client, acme["admin"], comparison_period="none", **WEEK)
    assert body["comparison"] is None
    assert by_type(body)["commits"]["previous_total"] is None
    assert by_type(body)["commits"]["growth_rate"] is None
    assert not insights(body, "largest_decrease") and not insights(body, "largest_increase")


def test_growth_from_zero_is_null_and_called_new(app, client, acme):
    add_productivity(app, acme["admin"].user.organization_id, ("focus_minutes", "2025-03-04T10:00:00Z", 90))
    body = trends(client, acme["admin"], **WEEK)
    (focus,) = body["metrics"]
    assert (focus["total"], focus["previous_total"], focus["growth_rate"], focus["change"]) == (90, 0, None, 90)
    assert [i["kind"] for i in body["insights"]] == ["new"]
    assert body["insights"][0]["message"] == "focus_minutes is new: 90 against 0 in the previous period."


def test_no_data_is_said_plainly(app, client, acme):
    body = trends(client, acme["admin"], **WEEK)
    assert body["metrics"] == []
    assert body["insights"] == [
        {
            "kind": "no_data",
            "metric_type": None,
            "message": "No productivity metrics or agent executions were recorded from 2025-03-01 to 2025-03-07.",
            "start": "2025-03-01",
            "end": "2025-03-07",
        }
    ]


def test_data_only_in_the_previous_period_is_a_full_decrease_and_no_data(app, client, acme):
    add_productivity(app, acme["admin"].user.organization_id, ("commits", "2025-02-25T10:00:00Z", 8))
    body = trends(client, acme["admin"], **WEEK)
    commits = by_type(body)["commits"]
    assert (commits["total"], commits["previous_total"], commits["growth_rate"]) == (0, 8, -1.0)
    assert [i["kind"] for i in body["insights"]] == ["no_data", "largest_decrease"]
    assert body["insights"][0]["message"].endswith("although the previous period had some.")
    assert body["insights"][1]["message"] == "commits fell 100% (8 → 0) against the previous period."


def test_a_spike_is_an_anomaly(app, client, acme):
    daily = [("commits", f"2025-03-{day:02d}T12:00:00Z", 60 if day == 5 else 10 + day % 2) for day in range(1, 15)]
    add_productivity(app, acme["admin"].user.organization_id, *daily)
    body = trends(client, acme["admin"], start_date="2025-03-01", end_date="2025-03-14")
    (found,) = insights(body, "anomaly")
    assert found["metric_type"] == "commits"
    assert (found["period"], found["value"], found["median"], found["direction"]) == (
        "2025-03-05T00:00:00+00:00",
        60,
        10.5,
        "spike",
    )
    assert found["message"] == "commits spiked on 2025-03-05: 60 against a typical 10.5 per day."


def test_flat_or_gently_varying_data_has_no_anomaly(app, client, acme):
    org = acme["admin"].user.organization_id
    add_productivity(app, org, *[("commits", f"2025-03-{day:02d}T12:00:00Z", 10) for day in range(1, 15)])
    add_productivity(app, org, *[("code_reviews", f"2025-03-{d:02d}T12:00:00Z", 8 + d % 4) for d in range(1, 15)])
    body = trends(client, acme["admin"], start_date="2025-03-01", end_date="2025-03-14")
    assert by_type(body)["commits"]["total"] == 140
    assert insights(body, "anomaly") == []


def test_the_anomaly_rule():
    assert find_anomalies([10, 10, 10, 10, 10, 50]) == [5]
    assert find_anomalies([10, 10, 10, 10, 10, 0]) == [5]  # a drop counts too
    assert find_anomalies([10, 10, 10, 10, 50]) == []  # fewer than 6 periods
    assert find_anomalies([10, 10, 10, 10, 10, 11]) == []  # a small step, though MAD is 0
    assert find_anomalies([0, 0, 0, 0, 0, 3]) == []  # a sparse metric's burst
    assert find_anomalies([100, 104, 96, 110, 92, 101, 99, 105]) == []  # ordinary noise


def test_a_partial_last_week_is_no_anomaly(app, client, acme):
    # 2025-02-03 is a Monday; the window ends on Wednesday 2025-03-19, so its last week has 3 days,
    # which would stand out against six full weeks if it were not left out.
    days = [f"2025-02-{d:02d}" for d in range(3, 29)] + [f"2025-03-{d:02d}" for d in range(1, 20)]
    add_productivity(app, acme["admin"].user.organization_id, *[("commits", f"{d}T12:00:00Z", 10) for d in days])
    body = trends(client, acme["admin"], start_date="2025-02-03", end_date="2025-03-19", aggregation="week")
    assert [p["total"] for p in by_type(body)["commits"]["series"]] == [70, 70, 70, 70, 70, 70, 30]
    assert insights(body, "anomaly") == []
    assert find_anomalies([70, 70, 70, 70, 70, 70, 30]) == [6]  # what including it would report


def test_default_aggregation_follows_the_range(client, acme):
    def aggregation(start: str, end: str) -> str:
        return trends(client, acme["admin"], start_date=start, end_date=end)["period"]["aggregation"]

    assert aggregation("2025-03-01", "2025-03-31") == "day"
    assert aggregation("2025-01-01", "2025-03-31") == "week"
    assert aggregation("2024-01-01", "2024-12-31") == "month"
    assert trends(client, acme["admin"], aggregation="month", **WEEK)["period"]["aggregation"] == "month"


def test_developers_see_only_their_own_data(app, client, acme):
    org = acme["admin"].user.organization_id
    developer, admin = acme["developer"].user.id, acme["admin"].user.id
    add_productivity(
        app,
        org,
        {"type": "commits", "timestamp": "2025-03-02T10:00:00Z", "value": 3, "user_id": developer},
        {"type": "commits", "timestamp": "2025-03-02T11:00:00Z", "value": 50, "user_id": admin},
        {"type": "commits", "timestamp": "2025-03-02T12:00:00Z", "value": 500},
    )
    add_executions(app, org, developer, ("2025-03-02T10:00:00Z", 10, True))
    add_executions(app, org, admin, ("2025-03-02T10:00:00Z", 10, True), ("2025-03-02T11:00:00Z", 10, True))

    mine = by_type(trends(client, acme["developer"], **WEEK))
    assert (mine["commits"]["total"], mine["agent_executions"]["total"]) == (3, 1)
    everyone = by_type(trends(client, acme["admin"], **WEEK))
    assert (everyone["commits"]["total"], everyone["agent_executions"]["total"]) == (553, 3)


def test_trends_of_one_team(app, client, acme):
    org = acme["admin"].user.organization_id
    developer = acme["developer"].user
    with app.app_context():
        ours = accounts.create_team(org, "Ours", "")
        theirs = accounts.create_team(org, "Theirs", "")
        accounts.add_member(ours, acme["manager"].user, "lead")
        accounts.add_member(ours, developer, "member")
    add_productivity(
        app,
        org,
        {"type": "commits", "timestamp": "2025-03-02T10:00:00Z", "value": 3, "user_id": developer.id},
        {"type": "commits", "timestamp": "2025-03-02T10:00:00Z", "value": 4, "team_id": ours.id},
        {"type": "commits", "timestamp": "2025-03-02T10:00:00Z", "value": 40, "team_id": theirs.id},
        {"type": "commits", "timestamp": "2025-03-02T10:00:00Z", "value": 400},
    )
    assert by_type(trends(client, acme["manager"], team_id=ours.id, **WEEK))["commits"]["total"] == 7
    assert by_type(trends(client, acme["manager"], **WEEK))["commits"]["total"] == 7
    assert by_type(trends(client, acme["admin"], team_id=theirs.id, **WEEK))["commits"]["total"] == 40
    response = client.get(TRENDS, query_string={"team_id": theirs.id}, headers=acme["manager"].headers)
    assert_api_error(response, 403)
    response = client.get(TRENDS, query_string={"team_id": "no-such-team"}, headers=acme["admin"].headers)
    assert_api_error(response, 404)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start_date": "2025-13-01"}, "start_date"),
        ({"end_date": "yesterday"}, "end_date"),
        ({"start_date": "2025-03-10", "end_date": "2025-03-01"}, "start_date"),
        ({"start_date": "2020-01-01", "end_date": "2025-01-01"}, "end_date"),
        ({"aggregation": "fortnight"}, "aggregation"),
        ({"aggregation": "hour", "start_date": "2025-01-01", "end_date": "2025-03-01"}, "aggregation"),
        ({"comparison_period": "last_week"}, "comparison_period"),
        ({"comparison_period": "2025-01-01/"}, "comparison_period"),
        ({"comparison_period": "2025-02-30/2025-03-01"}, "comparison_period"),
        ({"comparison_period": "2025-03-01/2025-01-01"}, "comparison_period"),
        ({"comparision_period": "previous"}, "comparision_period"),
    ],
)
def test_trends_reject_bad_parameters(client, acme, params, field):
    error = assert_api_error(client.get(TRENDS, query_string=params, headers=acme["developer"].headers), 400)
    assert field in error["details"], error


def test_trends_need_a_token(client):
    assert_api_error(client.get(TRENDS), 401)


# --- Team comparison -------------------------------------------------------------------------


@pytest.fixture
def teams(app: Flask, acme: dict[str, Member]) -> dict[str, Any]:
    """Alpha (the manager, the developer), Beta (another developer), Gamma (nobody), with data."""
    org = acme["admin"].user.organization_id
    passwords = app.extensions["weather_metrics"].passwords
    with app.app_context():
        other, _ = accounts.create_user(org, "dev2@acme.test", "Dev Two", "developer", passwords)
        alpha = accounts.create_team(org, "Alpha", "")
        beta = accounts.create_team(org, "Beta", "")
        gamma = accounts.create_team(org, "Gamma", "")
        accounts.add_member(alpha, acme["manager"].user, "lead")
        accounts.add_member(alpha, acme["developer"].user, "member")
        accounts.add_member(beta, other, "member")
    developer = acme["developer"].user.id
    add_productivity(
        app,
        org,
        {"type": "commits", "timestamp": "2025-03-02T10:00:00Z", "value": 10, "user_id": developer},
        {"type": "commits", "timestamp": "2025-03-03T10:00:00Z", "value": 5, "team_id": alpha.id},
        {"type": "commits", "timestamp": "2025-03-02T10:00:00Z", "value": 15, "user_id": other.id},
        {"type": "commits", "timestamp": "2025-03-04T10:00:00Z", "value": 4, "team_id": gamma.id},
        {"type": "commits", "timestamp": "2025-03-04T10:00:00Z", "value": 99},  # nobody's
        {"type": "commits", "timestamp": "2025-03-09T10:00:00Z", "value": 99, "user_id": other.id},  # too late
        {"type": "code_reviews", "timestamp": "2025-03-05T10:00:00Z", "value": 2, "user_id": other.id},
    )
    add_executions(
        app,
        org,
        developer,
        ("2025-03-02T10:00:00Z", 100, True),
        ("2025-03-02T11:00:00Z", 200, True),
        ("2025-03-03T10:00:00Z", 300, False),
    )
    add_executions(app, org, other.id, ("2025-03-05T10:00:00Z", 50, True))
    add_executions(app, org, None, ("2025-03-05T10:00:00Z", 1, True))  # matched to nobody
    return {"alpha": alpha.id, "beta": beta.id, "gamma": gamma.id}


def compare(client: Any, member: Member, **params: str) -> Any:
    return client.get(
        COMPARISON, query_string={"date_range": "2025-03-01/2025-03-07", **params}, headers=member.headers
    )


def test_team_values_and_rankings(client, acme, teams):
    response = compare(client, acme["admin"])
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["date_range"] == {
        "start": "2025-03-01T00:00:00.000Z",
        "end": "2025-03-08T00:00:00.000Z",
        "time_zone": "UTC",
    }
    assert body["metric_types"] == ["code_reviews", "commits", "agent_executions"]
    rows = {row["name"]: row for row in body["teams"]}
    assert [row["name"] for row in body["teams"]] == ["Alpha", "Beta", "Gamma"]
    assert {name: row["member_count"] for name, row in rows.items()} == {"Alpha": 2, "Beta": 1, "Gamma": 0}
    assert rows["Alpha"]["metrics"] == {"code_reviews": 0, "commits": 15, "agent_executions": 3}
    assert rows["Beta"]["metrics"] == {"code_reviews": 2, "commits": 15, "agent_executions": 1}
    assert rows["Gamma"]["metrics"] == {"code_reviews": 0, "commits": 4, "agent_executions": 0}
    # A tie shares the rank, and the next one skips it.
    assert [(r["name"], r["value"], r["rank"]) for r in body["rankings"]["commits"]] == [
        ("Alpha", 15, 1),
        ("Beta", 15, 1),
        ("Gamma", 4, 3),
    ]
    assert rows["Gamma"]["ranks"] == {"code_reviews": 2, "commits": 3, "agent_executions": 3}
    assert [(r["name"], r["rank"]) for r in body["rankings"]["agent_executions"]] == [
        ("Alpha", 1),
        ("Beta", 2),
        ("Gamma", 3),
    ]


def test_lower_average_duration_ranks_first(client, acme, teams):
    response = client.get(
        COMPARISON,
        query_string=[
            ("date_range", "2025-03-01/2025-03-07"),
            ("team_ids", teams["gamma"]),
            ("team_ids", f"{teams['alpha']},{teams['beta']}"),
            ("metric_types", "agent_avg_duration_ms,agent_success_rate"),
        ],
        headers=acme["admin"].headers,
    )
    body = response.get_json()
    assert [row["name"] for row in body["teams"]] == ["Gamma", "Alpha", "Beta"]  # the order asked for
    assert [(r["name"], r["value"], r["rank"]) for r in body["rankings"]["agent_avg_duration_ms"]] == [
        ("Beta", 50, 1),
        ("Alpha", 200, 2),
        ("Gamma", None, None),
    ]
    assert [(r["name"], r["value"], r["rank"]) for r in body["rankings"]["agent_success_rate"]] == [
        ("Beta", 1.0, 1),
        ("Alpha", 0.6667, 2),
        ("Gamma", None, None),
    ]


def test_a_manager_compares_only_their_teams(client, acme, teams):
    body = compare(client, acme["manager"]).get_json()
    assert [row["name"] for row in body["teams"]] == ["Alpha"]
    assert body["teams"][0]["metrics"]["commits"] == 15
    assert_api_error(compare(client, acme["manager"], team_ids=f"{teams['alpha']},{teams['beta']}"), 403)


def test_developers_may_not_compare_teams(client, acme, teams):
    assert_api_error(compare(client, acme["developer"], team_ids=teams["alpha"]), 403)


def test_another_organizations_team_is_not_found(app, client, acme, teams, globex):
    other = globex
    with app.app_context():
        foreign = accounts.create_team(other["admin"].user.organization_id, "Foreign", "")
    assert_api_error(compare(client, acme["admin"], team_ids=f"{teams['alpha']},{foreign.id}"), 404)
    assert_api_error(compare(client, other["admin"], team_ids=teams["alpha"]), 404)


def test_relative_date_ranges_end_now(app, client, acme, teams):
    add_productivity(
        app,
        acme["admin"].user.organization_id,
        {"type": "commits", "timestamp": current_hour(1), "value": 7, "team_id": teams["beta"]},
    )
    body = client.get(COMPARISON, query_string={"date_range": "7d"}, headers=acme["admin"].headers).get_json()
    assert {row["name"]: row["metrics"]["commits"] for row in body["teams"]} == {"Alpha": 0, "Beta": 7, "Gamma": 0}
    query = {"start_date": "2025-03-01", "end_date": "2025-03-07"}
    body = client.get(COMPARISON, query_string=query, headers=acme["admin"].headers).get_json()
    assert {row["name"]: row["metrics"]["commits"] for row in body["teams"]} == {"Alpha": 15, "Beta": 15, "Gamma": 4}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"team_ids": ",".join(f"team-{i}" for i in range(21))}, "team_ids"),
        ({"team_ids": "x" * 65}, "team_ids"),
        ({"metric_types": "commits,Not A Type"}, "metric_types"),
        ({"metric_types": ",".join(f"type{i}" for i in range(51))}, "metric_types"),
        ({"date_range": "yesterday"}, "date_range"),
        ({"date_range": "0d"}, "date_range"),
        ({"date_range": "5000d"}, "date_range"),
        ({"date_range": "2025-03-10/2025-03-01"}, "date_range"),
        ({"date_range": "2025-03-01/"}, "date_range"),
        ({"date_range": "30d", "start_date": "2025-03-01"}, "date_range"),
        ({"team": "x"}, "team"),
    ],
)
def test_team_comparison_rejects_bad_parameters(client, acme, params, field):
    response = client.get(COMPARISON, query_string=params, headers=acme["admin"].headers)
    error = assert_api_error(response, 400)
    assert field in error["details"], error


def test_periods_follow_the_organizations_time_zone(app, client, acme):
    from weather_metrics.store.models import Organization

    org = acme["admin"].user.organization_id
    with app.app_context():
        Organization.update(time_zone="America/New_York").where(Organization.id == org).execute()
    # 02:00 UTC on 2 March is still 1 March in New York.
    add_productivity(app, org, ("commits", "2025-03-02T02:00:00Z", 4), ("commits", "2025-03-02T06:00:00Z", 6))
    body = trends(client, acme["admin"], **WEEK)
    assert body["period"]["start"] == "2025-03-01T05:00:00.000Z"
    assert body["period"]["time_zone"] == "America/New_York"
    series = by_type(body)["commits"]["series"]
    assert series[0] == {"period": "2025-03-01T00:00:00-05:00", "total": 4}
    assert series[1] == {"period": "2025-03-02T00:00:00-05:00", "total": 6}


def test_a_comparison_length_names_the_window_before_and_compares_per_day(app, client, acme):
    """A month at one commit a day against the week before at two a day: growth -50% per day, not +114%."""
    org = acme["admin"].user.organization_id
    add_productivity(app, org, *[("commits", f"2025-03-{day:02d}T12:00:00Z", 1) for day in range(1, 31)])
    add_productivity(app, org, *[("commits", f"2025-02-{day:02d}T12:00:00Z", 2) for day in range(22, 29)])
    body = trends(client, acme["admin"], start_date="2025-03-01", end_date="2025-03-30", comparison_period="7d")
    assert body["comparison"] == {
        "start": "2025-02-22T00:00:00.000Z",
        "end": "2025-03-01T00:00:00.000Z",
        "basis": "per_day",
    }
    commits = by_type(body)["commits"]
    assert (commits["total"], commits["previous_total"], commits["growth_rate"]) == (30.0, 14.0, -0.5)
    assert "the 7 days before" in insights(body, "largest_decrease")[0]["message"]


@pytest.mark.parametrize(
    ("spec", "start"),
    [("2w", "2025-02-15T00:00:00.000Z"), ("1mo", "2025-02-01T00:00:00.000Z"), ("3mo", "2024-12-01T00:00:00.000Z")],
)
def test_comparison_lengths_in_weeks_and_calendar_months(client, acme, spec, start):
    body = trends(client, acme["admin"], **WEEK, comparison_period=spec)
    assert body["comparison"] == {"start": start, "end": "2025-03-01T00:00:00.000Z", "basis": "per_day"}


@pytest.mark.parametrize("spec", ["0d", "7x", "d", "-7d", "99999d", "7 d"])
def test_bad_comparison_lengths_are_400(client, acme, spec):
    response = client.get(TRENDS, query_string={**WEEK, "comparison_period": spec}, headers=acme["admin"].headers)
    error = assert_api_error(response, 400)
    assert "comparison_period" in error["details"]
