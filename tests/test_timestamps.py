"""One time format across /api and /mcp: every `*_at` and `timestamp` field is ISO 8601 with its zone, or null."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from tests.support import Member, rule_body

EXECUTION = {"agent_name": "reviewer", "command": "review", "execution_time_ms": 900, "success": True}


def time_fields(value: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    """Every (path, value) of a field named *_at or timestamp, at any depth of a JSON answer."""
    if isinstance(value, dict):
        for name, item in value.items():
            path = f"{where}.{name}"
            if name.endswith("_at") or name == "timestamp":
                yield path, item
            yield from time_fields(item, path)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from time_fields(item, f"{where}[{index}]")


def problems(answer: Any) -> list[str]:
    """Time fields that are not an ISO 8601 string with a zone (null aside)."""
    found = []
    for path, value in time_fields(answer):
        if value is None:
            continue
        if not isinstance(value, str):
            found.append(f"{path} = {value!r}")
            continue
        try:
            zoned = datetime.fromisoformat(value).tzinfo is not None
        except ValueError:
            zoned = False
        if not zoned:
            found.append(f"{path} = {value!r}")
    return found


def test_the_check_catches_integers_and_zoneless_times_at_any_depth():
    answer = {"a": [{"created_at": 1700000000}], "b": {"timestamp": "2025-01-15T10:30:00"}, "c": {"x_at": None}}
    assert problems(answer) == [".a[0].created_at = 1700000000", ".b.timestamp = '2025-01-15T10:30:00'"]
    assert problems({"updated_at": "2025-01-15T10:30:00.000Z", "at": 5, "name": "created_at"}) == []


def stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))


def test_no_answer_of_the_main_routes_holds_an_integer_time(service, acme: dict[str, Member]):
    app = service(webhook_allow_private=True)
    client = app.test_client()
    admin = acme["admin"].headers
    org = acme["admin"].user.organization_id
    answers: dict[str, Any] = {}

    def call(method: str, path: str, body: Any = None, headers: dict[str, str] = admin) -> Any:
        response = client.open(path, method=method, json=body, headers=headers)
        assert response.status_code < 300, (method, path, response.get_json())
        answers[f"{method} {path}"] = response.get_json()
        return response.get_json()

    password = acme["developer"].password
    call("POST", "/api/auth/login", {"email": acme["developer"].user.email, "password": password}, {})
    key = call("POST", "/api/keys", {"name": "fleet"})
    ingest = {"X-API-Key": key["secret"]}
    hook = call(
        "POST",
        "/mcp/hooks/register",
        {
            "hook_url": "http://127.0.0.1:9/hook",
            "events": ["metrics.collected"],
            "organization_id": org,
            "secret": "s" * 16,
        },
        ingest,
    )
    call("POST", "/mcp/metrics/collect", {**EXECUTION, "timestamp": stamp()}, ingest)  # stamps last_used_at
    user = call("POST", "/api/users", {"email": "new@acme.test", "name": "New", "role": "developer"})
    team = call("POST", "/api/teams", {"name": "Platform"})
    call("POST", f"/api/teams/{team['id']}/members", {"user_id": user["id"], "role": "member"})
    board = call("POST", "/api/dashboards", {"name": "Board"})
    rule = call("POST", "/api/alerts/rules", rule_body())
    job = call("POST", "/api/reports/export", {"format": "csv", "report_type": "productivity"})
    for path in (
        "/api/users",
        f"/api/users/{user['id']}",
        "/api/teams?include_members=true",
        "/api/keys",
        "/api/organization",
        "/api/dashboards",
        f"/api/dashboards/{board['id']}",
        f"/api/dashboards/{board['id']}/data",
        "/api/alerts/rules",
        f"/api/alerts/rules/{rule['id']}",
        "/api/alerts",
        f"/api/reports/{job['id']}",
        "/api/metrics/agents",
        "/api/metrics/productivity",
        "/api/analytics/productivity-trends",
        "/api/analytics/team-comparison",
    ):
        call("GET", path)
    for path in (f"/mcp/config/{org}", "/mcp/hooks", f"/mcp/hooks/{hook['id']}/deliveries"):
        call("GET", path, headers=ingest)

    found = {path: problems(answer) for path, answer in answers.items()}
    assert not any(found.values()), {path: bad for path, bad in found.items() if bad}
    # Control: the walk met the times this is about, with values.
    named = {path.rsplit(".", 1)[-1] for answer in answers.values() for path, value in time_fields(answer) if value}
    assert {"created_at", "updated_at", "last_used_at", "received_at", "next_evaluation_at"} <= named, named
