"""Two instances on one PostgreSQL, end to end: live events reach sockets of either, and a killed one loses nothing.

Two gunicorn servers (two ports) share one PostgreSQL schema, as two hosts would
(docs/scaling.md). A socket opened on the first hears of data posted to the second, of
an alert only the second evaluates, and of a dashboard's new data; and SIGKILL of one
instance during ingestion through both loses no acknowledged batch and stores none twice.
"""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from tests import databases
from tests.support import TEST_JWT_SECRET, Server, http, rule_body, seed_org, started
from tests.test_server import Stream
from tests.test_ws import Socket
from weather_metrics import create_app

SETTINGS = {
    "workers": 2,  # two processes each: an event must cross hosts and processes alike
    "threads": 16,
    "ws_dashboard_interval_seconds": 1,
    "metrics_ingest_rate_limit": "100000 per minute",
    "api_rate_limit": "100000 per minute",
}


@dataclass
class Pair:
    first: Server
    second: Server
    url: str  # the database both use
    admin: dict[str, str]  # the admin's headers
    key: str  # an API key of the organization, for /mcp


def stamp(seconds_ago: float = 60) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds_ago)).isoformat().replace("+00:00", "Z")


def execution(success: bool = True) -> dict[str, Any]:
    return {"agent_name": "a", "command": "c", "execution_time_ms": 10, "success": success, "timestamp": stamp()}


def seed(url: str) -> tuple[dict[str, str], str]:
    """An organization; its admin's headers and an API key."""
    settings = {"database": url, "jwt_secret": TEST_JWT_SECRET, "password_time_cost": 2, "password_memory_kib": 19456}
    app = create_app({**settings, "access_token_minutes": 1440})
    try:
        admin = seed_org(app, "Acme")["admin"]
        key = app.test_client().post("/api/keys", json={"name": "k"}, headers=admin.headers).get_json()["secret"]
    finally:
        app.extensions["weather_metrics"].close()
    return admin.headers, key


def servers(folder: Path, url: str, **settings: Any) -> tuple[Server, Server]:
    """Two instances on the database at `url`, each logging beside its own name."""
    pair = Server(folder / "first.db", **SETTINGS, **settings), Server(folder / "second.db", **SETTINGS, **settings)
    for server in pair:
        server.env["WEATHER_METRICS_DATABASE"] = url
        server.env["WEATHER_METRICS_EXPORT_DIR"] = str(folder / "exports")
    return pair


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    folder = tmp_path_factory.mktemp("instances")
    url = databases.postgresql_location(folder / "metrics.db", fresh=True)
    admin, key = seed(url)
    # The first evaluates alert rules only hourly: an alert heard there was fired by the second.
    first, second = servers(folder, url, alert_evaluation_seconds=1)
    first.env["WEATHER_METRICS_ALERT_EVALUATION_SECONDS"] = "3600"
    with started(first, second):
        yield Pair(first, second, url, admin, key)


@pytest.fixture
def socket_on_first(pair: Pair) -> Iterator[Socket]:
    sock = Socket(pair.first, f"?token={token_of_headers(pair.admin)}")
    yield sock
    sock.close()


def token_of_headers(headers: dict[str, str]) -> str:
    return headers["Authorization"].split(" ", 1)[1]


def collect(server: Server, key: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    status, _, body = http("POST", server.url + "/mcp/metrics/collect", items, headers={"X-API-Key": key})
    assert status == 201, body
    return body  # type: ignore[no-any-return]


def test_a_batch_posted_to_one_instance_reaches_a_socket_on_the_other(pair: Pair, socket_on_first: Socket) -> None:
    assert socket_on_first.subscribe("org") == (["org"], [])
    for _ in range(3):
        body = collect(pair.second, pair.key, [execution(), execution()])
        heard = socket_on_first.events("metric_ingested", 1, timeout=10)[0]
        assert heard["room"] == "org"
        assert heard["data"]["count"] == 2 and heard["data"]["batch_id"] == body["batch_id"], (heard, body)


def test_an_alert_fired_by_one_instance_reaches_a_socket_on_the_other(pair: Pair, socket_on_first: Socket) -> None:
    assert socket_on_first.subscribe("alerts") == (["alerts"], [])
    collect(pair.second, pair.key, [execution(success=False)] * 30)  # most calls of the window failed
    status, _, rule = http("POST", pair.first.url + "/api/alerts/rules", rule_body(name="Across"), pair.admin)
    assert status == 201, rule
    alert = socket_on_first.events("alert_triggered", 1, timeout=30)[0]
    assert alert["data"]["rule_id"] == rule["id"] and alert["data"]["rule_name"] == "Across", alert


def test_a_dashboard_on_one_instance_updates_with_data_posted_to_the_other(pair: Pair, socket_on_first: Socket) -> None:
    layout = [{"id": "calls", "type": "number", "metric": "agents.calls", "position": {"x": 0, "y": 0, "w": 2, "h": 2}}]
    status, _, dashboard = http(
        "POST", pair.first.url + "/api/dashboards", {"name": "Live", "scope": "user", "layout": layout}, pair.admin
    )
    assert status == 201, dashboard
    room = f"dashboard:{dashboard['id']}"
    assert socket_on_first.subscribe(room) == ([room], [])
    before = socket_on_first.events("dashboard_update", 1)[0]["data"]["data"]["data"]["value"]
    collect(pair.second, pair.key, [execution()] * 4)
    after = socket_on_first.events("dashboard_update", 1, timeout=15)[0]
    assert after["data"]["data"]["data"]["value"] == before + 4, after


def stored_per_batch(url: str) -> Counter[str]:
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cursor:
            cursor.execute("SELECT session_id, COUNT(*) FROM events GROUP BY session_id")
            return Counter(dict(cursor.fetchall()))
    finally:
        conn.close()


def test_sigkill_of_one_instance_loses_nothing_acknowledged_by_either(tmp_path: Path) -> None:
    url = databases.postgresql_location(tmp_path / "metrics.db", fresh=True)
    first, second = servers(tmp_path, url, ack="commit")
    first.start()
    second.start()
    try:
        with Stream(first, threads=3) as through_first, Stream(second, threads=3, first=500_000) as through_second:
            through_first.wait_for_acks(30)
            through_second.wait_for_acks(30)
            first.stop(signal.SIGKILL)
            after_kill = len(through_second.acked)
            through_second.wait_for_acks(after_kill + 30)  # the other goes on taking data
    finally:
        first.stop()
        second.stop()
    acked = through_first.acked + through_second.acked
    stored = stored_per_batch(url)
    missing = [batch for batch in acked if stored[f"b{batch}"] != 20]
    assert not missing, f"acknowledged batches not stored whole: {missing}"
    assert all(count == 20 for count in stored.values()), "a batch was stored partly or twice"
    assert through_first.statuses[200] >= 30 and through_second.statuses[200] >= 60
