"""Values at the edges of what Python's dates and floats hold: each is a 400, never a 500."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.support import assert_api_error

EXTREME_QUERIES = [
    "start_date=9999-12-28&end_date=9999-12-31",
    "start_date=0001-01-01T00:00:00%2B14:00&end_date=0001-01-05",
    "start_date=9999-12-31T23:00:00&end_date=9999-12-31T23:59:59.999999",
    "end_date=0001-01-01",
    "aggregation=week&start_date=9999-12-25&end_date=9999-12-29",
    "aggregation=month&start_date=9999-12-01&end_date=9999-12-29",
    "start_date=1900-01-01&end_date=1900-01-05",
]
ROUTES = [
    "/api/metrics/agents",
    "/api/metrics/productivity",
    "/api/analytics/productivity-trends",
    "/api/analytics/productivity-trends?comparison_period=none&",
    "/api/analytics/productivity-trends?comparison_period=previous_year&",
    "/api/analytics/team-comparison",
]


@pytest.fixture
def app(service):  # type: ignore[no-untyped-def]
    """A copy of the shared seeded database (conftest's seeded_db)."""
    return service()


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("query", EXTREME_QUERIES)
def test_dates_near_the_calendars_ends_are_400(client, acme, route, query):
    separator = "" if route.endswith("&") else "?"
    if route.endswith("team-comparison"):  # compares totals: it takes no aggregation
        query = "&".join(p for p in query.split("&") if not p.startswith("aggregation="))
    error = assert_api_error(client.get(f"{route}{separator}{query}", headers=acme["admin"].headers), 400)
    assert any("1971-8999" in message for message in error["details"].values()), error


@pytest.mark.parametrize("dates", [{"start_date": "9999-12-28", "end_date": "9999-12-31"}, {"end_date": "0001-01-01"}])
def test_a_dashboard_cannot_save_dates_its_data_could_not_use(client, acme, dates):
    widget = {"id": "w0", "type": "line", "metric": "agents.calls", "position": {"x": 0, "y": 0, "w": 12, "h": 2}}
    for body in (
        {"name": "d", "filters": dates, "layout": [widget]},
        {"name": "d", "layout": [{**widget, "filters": dates}]},
    ):
        assert_api_error(client.post("/api/dashboards", json=body, headers=acme["admin"].headers), 400)


@pytest.mark.parametrize("name", ["localtime", "posixrules", "Factory", "right/UTC", "Mars/Olympus"])
def test_only_iana_zone_names_are_organization_time_zones(client, acme, name):
    response = client.put("/api/organization", json={"time_zone": name}, headers=acme["admin"].headers)
    assert "time_zone" in assert_api_error(response, 400)["details"]


def test_a_number_too_large_for_a_float_is_refused_not_stored_as_infinity(client, acme):
    now = datetime.now(UTC).isoformat()
    raw = (
        '[{"agent_name": "a", "command": "c", "execution_time_ms": 1, "success": true, '
        f'"timestamp": "{now}", "metadata": {{"x": 1e400}}}}]'
    )
    headers = {**acme["developer"].headers, "Content-Type": "application/json"}
    assert_api_error(client.post("/api/metrics/agents", data=raw, headers=headers), 400)
    good = client.put("/api/organization", json={"time_zone": "Asia/Kolkata"}, headers=acme["admin"].headers)
    assert good.status_code == 200 and good.get_json()["time_zone"] == "Asia/Kolkata"
