"""Two instances (gunicorn servers) on one database: a commit in either is in the next answer of both.

Each instance keeps answers in memory (/v1 statistics, organization metrics of settled days,
dashboard data built from them). Warmed on A, changed through B (or by a third process
pruning), read at once from A: the new figures. Run on one SQLite file and on one fresh
PostgreSQL schema, whichever backend the run is for. Also: one Idempotency-Key sent to both
instances at once stores one batch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests import databases
from tests.support import TEST_JWT_SECRET, Server, http, make_event, started
from weather_metrics import create_app
from weather_metrics.accounts import organizations as accounts
from weather_metrics.store import versions
from weather_metrics.store.db import database
from weather_metrics.store.pruning import prune

CHEAP_ARGON2 = {"password_time_cost": 2, "password_memory_kib": 19456}
SETTLED_DAYS_AGO = 5  # before yesterday: the days organization metrics keep in memory


@dataclass
class Service:
    first: Server
    second: Server
    url: str  # the database both use
    admin: dict[str, str]
    key: dict[str, str]
    dashboard_id: str
    org_id: str


def seed(url: str) -> tuple[str, str, str, str]:
    """An organization with an admin and an ingest key: its id, the admin's email and password, the key's secret."""
    app = create_app({"database": url, "jwt_secret": TEST_JWT_SECRET, **CHEAP_ARGON2})
    try:
        with app.app_context():
            passwords = app.extensions["weather_metrics"].passwords
            org, admin, password = accounts.create_organization("Acme", "admin@acme.test", "Admin", passwords)
            _, secret = accounts.create_api_key(org.id, "mcp server", admin.id)
    finally:
        app.extensions["weather_metrics"].close()
    return org.id, admin.email, password, secret


def call(server: Server, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    status, _, answer = http(method, server.url + path, body, headers=headers)
    assert status in (200, 201), (method, path, status, answer)
    return answer


def instance(path: Path, url: str) -> Server:
    server = Server(path, webhook_allow_private=True, **CHEAP_ARGON2)
    server.env["WEATHER_METRICS_DATABASE"] = url  # this backend's, whichever the run is for
    return server


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def service(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """Both instances, for every test of the module: each test compares figures with those it read first."""
    path = tmp_path_factory.mktemp("instances") / "metrics.db"
    url = str(path) if request.param == "sqlite" else databases.postgresql_location(path, fresh=True)
    org_id, email, password, secret = seed(url)
    with started(instance(path, url), instance(path, url)) as (first, second):
        tokens = call(first, "POST", "/api/auth/login", {"email": email, "password": password})
        admin = {"Authorization": f"Bearer {tokens['access_token']}"}
        widget = {
            "id": "calls",
            "type": "number",
            "metric": "agents.calls",
            "position": {"x": 0, "y": 0, "w": 6, "h": 4},
        }
        board = call(
            first,
            "POST",
            "/api/dashboards",
            {"name": "Board", "layout": [{**widget, "filters": {"range": "30d"}}]},
            admin,
        )
        yield Service(first, second, url, admin, {"X-API-Key": secret}, board["id"], org_id)


def execution(days_ago: int = SETTLED_DAYS_AGO) -> dict[str, Any]:
    moment = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=days_ago)
    return {
        "session_id": "s-1",
        "user_identifier": "admin@acme.test",
        "agent_name": "reviewer",
        "command": "review",
        "execution_time_ms": 120,
        "success": True,
        "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def post_execution(server: Server, key: dict[str, str], days_ago: int = SETTLED_DAYS_AGO) -> None:
    assert call(server, "POST", "/mcp/metrics/collect", execution(days_ago), key)["accepted"] == 1


def figures(service: Service, server: Server) -> tuple[int, int, int]:
    """/v1 total calls, the organization's agent calls over 30 days, and the dashboard's calls widget."""
    stats = call(server, "GET", "/v1/stats/overview?period=7d")["summary"]["total_calls"]
    start = (datetime.now(UTC) - timedelta(days=29)).strftime("%Y-%m-%d")
    agents = call(server, "GET", f"/api/metrics/agents?start_date={start}", headers=service.admin)
    board = call(server, "GET", f"/api/dashboards/{service.dashboard_id}/data", headers=service.admin)
    widget = {w["id"]: w for w in board["widgets"]}["calls"]
    return stats, agents["totals"]["calls"], widget["data"]["value"]


def warm(service: Service, server: Server) -> tuple[int, int, int]:
    before = figures(service, server)
    assert figures(service, server) == before  # asked twice: the second from memory
    return before


def test_a_commit_through_one_instance_is_in_the_next_answer_of_the_other(service: Service) -> None:
    post_execution(service.first, service.key)
    for writer, reader in ((service.second, service.first), (service.first, service.second)):
        calls, agents, board = warm(service, reader)
        assert call(writer, "POST", "/v1/events", {"events": [make_event()]})["status"] == "accepted"
        post_execution(writer, service.key)
        assert figures(service, reader) == (calls + 1, agents + 1, board + 1)


def test_pruning_by_another_process_is_in_the_next_answer_of_both(service: Service) -> None:
    _, agents, board = figures(service, service.first)
    post_execution(service.first, service.key)
    post_execution(service.second, service.key, days_ago=SETTLED_DAYS_AGO + 1)
    for server in (service.first, service.second):
        assert warm(service, server)[1:] == (agents + 2, board + 2)
    app = create_app({"database": service.url, "jwt_secret": TEST_JWT_SECRET})
    try:
        with app.app_context(), database.connection_context():
            # Rollups older than SETTLED_DAYS_AGO days go: the execution of the day before.
            assert prune(datetime.now(UTC), 3650, SETTLED_DAYS_AGO, 24) > 0
    finally:
        app.extensions["weather_metrics"].close()
    for server in (service.first, service.second):
        assert figures(service, server)[1:] == (agents + 1, board + 1)


def at_once(service: Service, path: str, body: Any, headers: dict[str, str]) -> list[tuple[int, Any]]:
    """The same request sent to both instances at the same moment; both answers."""
    answers: list[tuple[int, Any]] = []
    start = threading.Barrier(2)

    def send(server: Server) -> None:
        start.wait()
        status, _, answer = http("POST", server.url + path, body, headers=headers)
        answers.append((status, answer))

    threads = [threading.Thread(target=send, args=(server,)) for server in (service.first, service.second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return answers


def test_one_idempotency_key_sent_to_both_instances_at_once_stores_one_batch(service: Service) -> None:
    calls, agents, _ = figures(service, service.first)
    body = {"events": [make_event(), make_event()]}
    answers = at_once(service, "/v1/events", body, {"Idempotency-Key": "batch-0001"})
    assert [status for status, _ in answers] == [200, 200], answers
    assert answers[0][1] == answers[1][1]  # the replay gets the first one's answer
    executions = [execution(days_ago=0)] * 3
    answers = at_once(service, "/mcp/metrics/collect", executions, {**service.key, "Idempotency-Key": "batch-0001"})
    assert [status for status, _ in answers] == [201, 201], answers
    assert answers[0][1] == answers[1][1]
    assert figures(service, service.second)[:2] == (calls + 2, agents + 3)


def test_a_webhook_registered_through_one_instance_hears_the_next_batch_of_the_other(service: Service) -> None:
    post_execution(service.first, service.key)  # the first now knows the organization has no webhooks
    body = {
        "hook_url": "http://127.0.0.1:9/hook",  # nothing listens: the delivery is only recorded here
        "events": ["metrics.collected"],
        "organization_id": service.org_id,
        "secret": "s" * 32,
    }
    hook = call(service.second, "POST", "/mcp/hooks/register", body, service.key)
    post_execution(service.first, service.key)
    deadline = time.monotonic() + 10  # the delivery is recorded just after the batch commits
    while True:
        found = call(service.second, "GET", f"/mcp/hooks/{hook['id']}/deliveries", headers=service.key)
        if found["deliveries"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [d["event"] for d in found["deliveries"]] == ["metrics.collected"]


def test_only_executions_of_settled_days_raise_their_version(app: Flask) -> None:
    """Executions of today and yesterday keep the settled days' answers; a late one for an older day drops them."""
    with app.app_context():
        passwords = app.extensions["weather_metrics"].passwords
        org, admin, _ = accounts.create_organization("Acme", "admin@acme.test", "Admin", passwords)
        _, secret = accounts.create_api_key(org.id, "mcp server", admin.id)
    client = app.test_client()

    def history_after(days_ago: int) -> int:
        response = client.post("/mcp/metrics/collect", json=execution(days_ago), headers={"X-API-Key": secret})
        assert response.status_code == 201, response.get_json()
        with app.app_context(), database.connection_context():
            return versions.current(versions.AGENT_HISTORY)

    settled = history_after(SETTLED_DAYS_AGO)
    assert history_after(0) == settled
    assert history_after(SETTLED_DAYS_AGO) == settled + 1
