"""A NUL character in a path, a query string or a JSON body: the same refusal on SQLite and PostgreSQL.

PostgreSQL's text cannot hold U+0000, so a NUL that reached it would fail the statement (a 500);
SQLite would store it. Each case also runs on the other backend (make test-postgres).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import assert_api_error, rule_body
from weather_metrics.accounts import organizations as accounts


@pytest.fixture
def app(service):  # type: ignore[no-untyped-def]
    return service()


def ids(client: Any, acme: Any) -> dict[str, str]:
    team = client.post("/api/teams", headers=acme["admin"].headers, json={"name": "Platform"})
    assert team.status_code == 201, team.get_json()
    return {"team": team.get_json()["id"], "developer": acme["developer"].user.id}


@pytest.mark.parametrize(
    "path",
    [
        "/api/users/%00",
        "/api/users/{developer}%00",
        "/api/teams/{team}%00/members",
        "/api/dashboards/%00",
        "/api/alerts/rules/%00",
        "/api/reports/%00",
        "/mcp/config/%00",
    ],
)
def test_a_path_naming_a_nul_names_nothing(client, acme, path):
    url = path.format(**ids(client, acme))
    method = "POST" if url.endswith("/members") else "GET"
    assert_api_error(client.open(url, method=method, headers=acme["admin"].headers, json={}), 404)


def test_a_page_or_statistic_path_naming_a_nul_is_not_found(client, acme):
    assert client.get("/v1/stats/tools/get_forecast%00").status_code == 404
    assert client.get("/dashboards/%00", headers={"Accept": "text/html"}).status_code == 404


@pytest.mark.parametrize(
    "query",
    [
        "/api/users?team_id=%00",
        "/api/teams?include_members=%00",
        "/api/metrics/agents?agent_name=%00",
        "/api/metrics/productivity?team_id={team}%00",
        "/api/analytics/productivity-trends?team_id=%00",
        "/api/analytics/team-comparison?team_ids=%00",
        "/api/alerts?rule_id=%00",
    ],
)
def test_a_query_value_with_a_nul_is_refused(client, acme, query):
    error = assert_api_error(client.get(query.format(**ids(client, acme)), headers=acme["admin"].headers), 400)
    assert "NUL" in error["message"]


def test_a_statistics_query_with_a_nul_is_refused_in_the_v1_format(client):
    response = client.get("/v1/stats/overview?period=7d%00")
    assert response.status_code == 400
    assert "NUL" in response.get_json()["details"]


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/api/teams", {"name": "Plat\x00form"}, "name"),
        ("POST", "/api/teams/{team}/members", {"user_id": "{developer}\x00"}, "user_id"),
        ("POST", "/api/users", {"email": "n@acme.test", "name": "N\x00", "role": "developer"}, "name"),
        ("PUT", "/api/users/{developer}", {"name": "Dev\x00"}, "name"),
        ("POST", "/api/keys", {"name": "ci\x00"}, "name"),
        ("POST", "/api/dashboards", {"name": "Board\x00", "scope": "organization", "layout": []}, "name"),
        ("POST", "/api/alerts/rules", rule_body(name="Errors\x00"), "name"),
        ("POST", "/api/alerts/rules", rule_body(scope={"type": "team", "team_id": "\x00"}), "scope"),
        ("POST", "/api/auth/refresh", {"refresh_token": "\x00"}, "refresh_token"),
    ],
)
def test_a_json_body_with_a_nul_is_refused_and_nothing_is_stored(client, acme, method, path, body, field):
    known = ids(client, acme)
    body = {key: value.format(**known) if isinstance(value, str) else value for key, value in body.items()}
    headers = acme["admin"].headers
    before = {name: client.get(f"/api/{name}", headers=headers).get_json() for name in ("teams", "users", "keys")}
    error = assert_api_error(client.open(path.format(**known), method=method, headers=headers, json=body), 400)
    assert error["details"] == {field: "Must not contain a NUL character (\\u0000)."}
    after = {name: client.get(f"/api/{name}", headers=headers).get_json() for name in ("teams", "users", "keys")}
    assert after == before


def test_a_webhook_registration_with_a_nul_is_refused(app, client, acme):
    org_id = acme["admin"].user.organization_id
    with app.app_context():
        _key, secret = accounts.create_api_key(org_id, "CI", acme["admin"].user.id)
    body = {
        "hook_url": "https://hooks.example/in\x00",
        "events": ["metrics.collected"],
        "organization_id": org_id,
        "secret": "s" * 20 + "\x00xyz",
    }
    response = client.post("/mcp/hooks/register", json=body, headers={"X-API-Key": secret})
    error = assert_api_error(response, 400)
    assert error["details"] == dict.fromkeys(("hook_url", "secret"), "Must not contain a NUL character (\\u0000).")
    assert client.get("/mcp/hooks", headers={"X-API-Key": secret}).get_json()["webhooks"] == []
