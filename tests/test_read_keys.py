"""API keys of the read scope: the organization-wide metrics and analytics of /api, and nothing else.

The authorization matrix (test_authz_matrix.py) holds the status of every /api route for
both scopes; here: what a read key sees, how it is refused elsewhere, and how it is limited.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support import Member, assert_api_error
from weather_metrics.accounts import organizations as accounts
from weather_metrics.store.db import database

READS = (
    "/api/metrics/agents",
    "/api/metrics/productivity",
    "/api/analytics/productivity-trends",
    "/api/analytics/team-comparison",
)


def make_key(client: FlaskClient, admin: Member, scope: str | None = "read", name: str = "grafana") -> dict[str, Any]:
    body = {"name": name} if scope is None else {"name": name, "scope": scope}
    response = client.post("/api/keys", json=body, headers=admin.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def key_headers(key: dict[str, Any]) -> dict[str, str]:
    return {"X-API-Key": key["secret"]}


def stamp(hours_ago: float = 1) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def execution(**fields: Any) -> dict[str, Any]:
    item = {"agent_name": "reviewer", "command": "review", "execution_time_ms": 900, "success": True}
    return {**item, "timestamp": stamp(), **fields}


@pytest.fixture
def app(service) -> Flask:  # type: ignore[no-untyped-def]
    """A copy of the shared seeded database (conftest's seeded_db): Acme and Globex."""
    return service()  # type: ignore[no-any-return]


@pytest.fixture
def team_id(client, acme) -> str:  # type: ignore[no-untyped-def]
    """A team of Acme with its developer, and metrics: the developer's executions, the team's commits."""
    admin, developer = acme["admin"], acme["developer"]
    team = client.post("/api/teams", json={"name": "Platform"}, headers=admin.headers).get_json()
    added = {"user_id": developer.user.id, "role": "member"}
    assert client.post(f"/api/teams/{team['id']}/members", json=added, headers=admin.headers).status_code == 201
    for path, item in (
        ("/api/metrics/agents", execution(user_id=developer.user.id)),
        ("/api/metrics/agents", execution(agent_name="admin-only", user_id=admin.user.id)),
        ("/api/metrics/productivity", {"type": "commits", "value": 4, "timestamp": stamp(), "team_id": team["id"]}),
    ):
        response = client.post(path, json=[item], headers=admin.headers)
        assert response.status_code == 201, response.get_json()
    return str(team["id"])


# --- what a read key sees --------------------------------------------------------------------------


def test_a_read_key_sees_what_the_admin_sees_on_every_read_route(client, acme, team_id):
    key = make_key(client, acme["admin"])
    dates = f"start_date={stamp(48)[:10]}&end_date={stamp(0)[:10]}"
    queries = {
        "/api/metrics/agents": [dates, f"{dates}&user_id={acme['developer'].user.id}", f"{dates}&team_id={team_id}"],
        "/api/metrics/productivity": [dates, f"{dates}&team_id={team_id}"],
        "/api/analytics/productivity-trends": [dates, f"{dates}&team_id={team_id}"],
        "/api/analytics/team-comparison": [dates, f"{dates}&team_ids={team_id}"],
    }
    assert set(queries) == set(READS)
    for path, variants in queries.items():
        for query in variants:
            as_admin = client.get(f"{path}?{query}", headers=acme["admin"].headers)
            as_key = client.get(f"{path}?{query}", headers=key_headers(key))
            assert as_admin.status_code == 200, (path, query, as_admin.get_json())
            assert as_key.get_json() == as_admin.get_json(), (path, query)
    everyone = client.get(f"/api/metrics/agents?{dates}", headers=key_headers(key)).get_json()
    assert {agent["agent_name"] for agent in everyone["agents"]} == {"reviewer", "admin-only"}
    # Not what a developer sees: the admin's own executions are in the key's answer only.
    mine = client.get(f"/api/metrics/agents?{dates}", headers=acme["developer"].headers).get_json()
    assert {agent["agent_name"] for agent in mine["agents"]} == {"reviewer"}


def test_a_read_key_of_another_organization_sees_nothing_of_this_one(client, acme, globex, team_id):
    theirs = make_key(client, globex["admin"])
    for query in (f"user_id={acme['developer'].user.id}", f"team_id={team_id}"):
        assert_api_error(client.get(f"/api/metrics/agents?{query}", headers=key_headers(theirs)), 404)
    assert_api_error(client.get(f"/api/analytics/team-comparison?team_ids={team_id}", headers=key_headers(theirs)), 404)
    own = client.get("/api/metrics/agents", headers=key_headers(theirs)).get_json()
    assert own["agents"] == [] and own["totals"]["calls"] == 0


def test_with_a_bearer_token_the_token_decides_and_the_key_is_ignored(client, acme, team_id):
    key = make_key(client, acme["admin"])
    headers = {**acme["developer"].headers, **key_headers(key)}
    assert_api_error(client.get(f"/api/metrics/agents?user_id={acme['admin'].user.id}", headers=headers), 403)
    assert_api_error(client.get("/api/analytics/team-comparison", headers=headers), 403)


# --- where a key is refused --------------------------------------------------------------------------


def test_a_read_key_is_refused_with_401_on_mcp_and_stores_nothing(client, acme, team_id):
    key = make_key(client, acme["admin"])
    org = acme["admin"].user.organization_id
    for headers in (key_headers(key), {"Authorization": f"Bearer {key['secret']}"}):
        answers = [
            client.post("/mcp/metrics/collect", json=execution(), headers=headers),
            client.get(f"/mcp/config/{org}", headers=headers),
            client.get("/mcp/hooks", headers=headers),
            client.post("/mcp/hooks/register", json={}, headers=headers),
        ]
        for response in answers:
            assert "read scope" in assert_api_error(response, 401)["message"], response.request.path
    with client.application.app_context():
        assert database.execute_sql("SELECT COUNT(*) FROM agent_executions").fetchone()[0] == 2


def test_a_read_key_with_a_token_on_mcp_config_is_still_refused(client, acme):
    """/mcp judges the key it is sent, as it does with an ingest key: a read key does not fall back to the token."""
    key = make_key(client, acme["admin"])
    org = acme["admin"].user.organization_id
    assert client.get(f"/mcp/config/{org}", headers=acme["admin"].headers).status_code == 200
    assert_api_error(client.get(f"/mcp/config/{org}", headers={**acme["admin"].headers, **key_headers(key)}), 401)


def test_an_ingest_key_is_refused_on_the_read_routes_and_keeps_ingesting(client, acme):
    ingest = make_key(client, acme["admin"], scope=None, name="fleet")
    assert ingest["scope"] == "ingest"
    for path in READS:
        message = assert_api_error(client.get(path, headers=key_headers(ingest)), 401)["message"]
        assert "ingest scope" in message, path
    response = client.post("/mcp/metrics/collect", json=execution(), headers=key_headers(ingest))
    assert response.status_code == 201, response.get_json()


@pytest.mark.parametrize("path", ["/api/users", "/api/keys", "/api/organization", "/api/dashboards", "/api/alerts"])
def test_a_read_key_is_no_credential_on_other_api_routes(client, acme, path):
    key = make_key(client, acme["admin"])
    message = assert_api_error(client.get(path, headers=key_headers(key)), 401)["message"]
    assert "not an API key" in message


def test_a_read_key_goes_in_x_api_key_not_in_authorization(client, acme):
    key = make_key(client, acme["admin"])
    assert_api_error(client.get(READS[0], headers={"Authorization": f"Bearer {key['secret']}"}), 401)


def test_a_revoked_or_unknown_read_key_is_401(client, acme):
    key, kept = make_key(client, acme["admin"]), make_key(client, acme["admin"], name="kept")
    assert client.delete(f"/api/keys/{key['id']}", headers=acme["admin"].headers).status_code == 204
    for headers in (key_headers(key), {"X-API-Key": key["secret"] + "x"}, {"X-API-Key": "wm_nothing"}):
        assert_api_error(client.get(READS[0], headers=headers), 401)
    assert client.get(READS[0], headers=key_headers(kept)).status_code == 200


# --- rate limits -----------------------------------------------------------------------------------


@pytest.mark.usefixtures("one_minute_window")
def test_a_read_key_has_its_own_api_allowance(service, acme):
    app = service(api_rate_limit="3 per minute")
    client = app.test_client()
    # Keys made directly: POST /api/keys would spend the admin's allowance, not what this test is about.
    admin = acme["admin"].user
    with app.app_context():
        secrets = [accounts.create_api_key(admin.organization_id, n, admin.id, "read")[1] for n in ("a", "b")]
    first, second = ({"X-API-Key": s} for s in secrets)
    for remaining in (2, 1, 0):
        response = client.get(READS[0], headers=first)
        assert response.status_code == 200 and response.headers["X-RateLimit-Remaining"] == str(remaining)
    assert_api_error(client.get(READS[0], headers=first), 429)
    # Per key: the organization's other key, its admin and an unknown key on the same address go on.
    assert client.get(READS[0], headers=second).headers["X-RateLimit-Remaining"] == "2"
    assert client.get(READS[0], headers=acme["admin"].headers).status_code == 200
    assert_api_error(client.get(READS[0], headers={"X-API-Key": "wm_unknown"}), 401)


@pytest.mark.usefixtures("one_minute_window")
def test_a_read_key_on_mcp_does_not_spend_the_organizations_ingest_allowance(service, acme):
    app = service(mcp_rate_limit="2 per minute")
    client = app.test_client()
    read, ingest = make_key(client, acme["admin"]), make_key(client, acme["admin"], scope="ingest", name="fleet")
    for _ in range(3):
        client.post("/mcp/metrics/collect", json=execution(), headers=key_headers(read))
    for remaining in (1, 0):
        response = client.post("/mcp/metrics/collect", json=execution(), headers=key_headers(ingest))
        assert response.status_code == 201 and response.headers["X-RateLimit-Remaining"] == str(remaining)
