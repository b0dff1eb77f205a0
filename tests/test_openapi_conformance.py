"""The running server answers as /openapi.json says: schemathesis sends every operation generated requests.

The real server (gunicorn from the Procfile) runs on an organization with data in each
resource. Each operation gets a few valid and invalid requests, derandomized, with the
credentials of its surface: none for /v1 and the service, an admin's access token for /api,
the organization's API key for /mcp. An operation with ids in its path is then called again
with the seeded ids, so its answers are real ones, not only 404s. Each answer must be no
server error, have a documented status code and content type, and match the documented schema.

Left out: POST /api/auth/logout (it would end the session the other requests use) and
GET /ws (a WebSocket upgrade, which an HTTP client cannot make: tests/test_ws.py covers it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support import Member, Server, current_hour, http, make_event, seed_org, seeded_database
from weather_metrics.web.docs import build_spec

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
CONFIG = schemathesis.Config.from_dict(
    {
        "warnings": False,
        "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
        "generation": {"mode": "all", "max-examples": 10, "deterministic": True, "database": "none"},
        "analysis": {"constants": {"enabled": False}},
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "stateful": {"enabled": False},
            # Generation depends on nothing but the schema: no ids learned from answers (a learned
            # API key id would let DELETE /api/keys/{key_id} revoke the key /mcp requests use).
            "fuzzing": {"extra-data-sources": {"responses": False}, "error-feedback": {"enabled": False}},
        },
    }
)
SCHEMA = (
    schemathesis.openapi.from_dict(build_spec(), config=CONFIG)
    .exclude(method="POST", path="/api/auth/logout")
    .exclude(method="GET", path="/ws")
)
SETTINGS = {
    "password_time_cost": 2,
    "password_memory_kib": 19456,
    "api_rate_limit": "100000 per hour",
    "alert_evaluation_seconds": 1,
}
TOOL = "get_forecast"


@dataclass
class Live:
    """The running server, the credentials of each surface, and an id of each seeded thing."""

    server: Server
    admin: dict[str, str]
    api_key: dict[str, str]
    ids: dict[str, str]

    def headers(self, path: str) -> dict[str, str]:
        if path.startswith(("/api/", "/ws")):
            return self.admin
        return self.api_key if path.startswith("/mcp/") else {}

    def post(self, path: str, body: Any, expect: int = 201) -> Any:
        status, _, answer = http("POST", self.server.url + path, body, headers=self.headers(path))
        assert status == expect, (path, status, answer)
        return answer


def seed(app: Any) -> dict[str, Any]:
    """Acme's admin, manager and developer, a team the manager leads with the developer in it, and an API key."""
    from weather_metrics.accounts import organizations as accounts

    people = seed_org(app, "Acme")
    with app.app_context():
        admin, manager, developer = (people[role].user for role in ("admin", "manager", "developer"))
        team = accounts.create_team(admin.organization_id, "Platform", "", lead=manager)
        accounts.add_member(team, developer, "member")
        _key, secret = accounts.create_api_key(admin.organization_id, "CI", admin.id)
    return {"people": people, "team_id": team.id, "api_key": secret}


def fill(live: Live, developer: Member) -> None:
    """One of everything, sent over HTTP: events, metrics, a webhook, a dashboard, an alert rule, an export."""
    live.post("/v1/events", {"events": [make_event(tool=TOOL)]}, expect=200)
    hook = live.post(
        "/mcp/hooks/register",
        {
            "hook_url": "https://hooks.invalid/weather",  # never resolves: deliveries fail and are logged
            "events": ["metrics.collected", "alert.triggered"],
            "organization_id": live.ids["organization_id"],
            "secret": "s" * 24,
        },
    )
    execution = {"agent_name": "code-reviewer", "command": "/review", "success": True, "timestamp": current_hour()}
    live.post("/mcp/metrics/collect", [{**execution, "execution_time_ms": ms} for ms in (800, 1200)])
    live.post("/api/metrics/productivity", {"type": "commits", "value": 3, "timestamp": current_hour()})
    widgets = [
        {"id": "calls", "type": "line", "metric": "agents.calls", "position": {"x": 0, "y": 0, "w": 6, "h": 4}},
        {
            "id": "commits",
            "type": "number",
            "metric": "productivity.commits",
            "position": {"x": 6, "y": 0, "w": 6, "h": 4},
        },
    ]
    dashboard = live.post("/api/dashboards", {"name": "Acme", "scope": "organization", "layout": widgets})
    rule = {
        "name": "Any calls",
        "metric": "call_volume",
        "scope": {"type": "organization"},
        "comparison": "gte",
        "threshold": 1,
        "window_minutes": 1440,
        "severity": "low",
        "cooldown_minutes": 0,
    }
    rule_id = live.post("/api/alerts/rules", rule)["id"]
    job = live.post("/api/reports/export", {"format": "csv", "report_type": "agents"}, expect=202)
    live.ids.update(
        user_id=developer.user.id, hook_id=hook["id"], dashboard_id=dashboard["id"], rule_id=rule_id, job_id=job["id"]
    )
    deadline = time.monotonic() + 20
    while not http("GET", live.server.url + "/api/alerts", headers=live.admin)[2]["alerts"]:
        assert time.monotonic() < deadline, "the alert rule did not fire"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    path: Path = tmp_path_factory.mktemp("openapi") / "metrics.db"
    seeded = seeded_database(path, seed)
    people = seeded["people"]
    with Server(path, **SETTINGS) as server:
        ids = {"organization_id": people["admin"].user.organization_id, "team_id": seeded["team_id"], "tool_name": TOOL}
        running = Live(server, people["admin"].headers, {"X-API-Key": seeded["api_key"]}, ids)
        fill(running, people["developer"])
        yield running


def test_the_server_serves_the_document_tested(live: Live) -> None:
    status, _, served = http("GET", live.server.url + "/openapi.json")
    assert status == 200
    assert served == json.loads(json.dumps(build_spec()))


@SCHEMA.parametrize()
def test_answers_match_the_document(case: schemathesis.Case, live: Live) -> None:
    headers = live.headers(case.path)
    case.call_and_validate(base_url=live.server.url, headers=headers, checks=CHECKS)
    if case.path_parameters and case.method != "DELETE":  # deleting seeded things would starve later cases
        case.path_parameters = {name: live.ids.get(name, value) for name, value in case.path_parameters.items()}
        case.call_and_validate(base_url=live.server.url, headers=headers, checks=CHECKS)


def test_the_longest_query_the_document_allows_reaches_the_service(live: Live) -> None:
    """Every string at its documented maxLength, in 4-byte characters: the service answers, not gunicorn (414)."""
    parameters = build_spec()["paths"]["/api/metrics/agents"]["get"]["parameters"]
    longest = {p["name"]: "𝔸" * p["schema"]["maxLength"] for p in parameters if "maxLength" in p["schema"]}
    assert set(longest) >= {"agent_name", "user_id", "team_id", "start_date", "end_date"}
    status, headers, answer = http(
        "GET", live.server.url + "/api/metrics/agents?" + urlencode(longest), headers=live.admin
    )
    assert len(urlencode(longest)) > 4094  # gunicorn's default limit of a request line
    assert headers["Content-Type"] == "application/json"
    assert status == 400 and "start_date" in answer["error"]["details"], answer
