"""`flask --app app <command>` runs none of the service's background work; gunicorn serving the same file does.

Each database here holds work a running service does at once: an alert rule that is due
(its condition holds), an event past `retention_days`, and a webhook delivery waiting
for a receiver that answers.
"""

from __future__ import annotations

import http.server
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests import databases
from tests.support import KEEP_HISTORY, ROOT, TEST_JWT_SECRET, Server, make_event, rule_body, seed_org
from weather_metrics import create_app

pytestmark = databases.sqlite_only  # commands run on the SQLite file the setting names, as an operator's do

SETTINGS = {"jwt_secret": TEST_JWT_SECRET, "webhook_allow_private": True}


class Receiver:
    """A webhook receiver on a free port that answers 200 and counts what it was sent."""

    def __init__(self) -> None:
        posts: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                self.rfile.read(int(self.headers["Content-Length"]))
                posts.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.posts = posts
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    thread = threading.Thread(target=found.server.serve_forever, daemon=True)
    thread.start()
    yield found
    found.server.shutdown()
    found.server.server_close()


def seed(path: Path, hook_url: str) -> None:
    """An organization with a due rule on failing executions, a pending delivery of them, and an event 200 days old."""
    app = create_app({**SETTINGS, **KEEP_HISTORY, "database": str(path), "password_time_cost": 2})
    state = app.extensions["weather_metrics"]
    state.alerts.close()  # the writer stores what arrives; nothing is evaluated or delivered yet
    state.webhooks.close()
    try:
        admin = seed_org(app, "Acme")["admin"]
        client = app.test_client()
        key = client.post("/api/keys", json={"name": "k"}, headers=admin.headers).get_json()["secret"]
        hook = {"hook_url": hook_url, "events": ["metrics.collected"], "organization_id": admin.user.organization_id}
        response = client.post("/mcp/hooks/register", json={**hook, "secret": "s" * 32}, headers={"X-API-Key": key})
        assert response.status_code == 201, response.get_json()
        assert client.post("/api/alerts/rules", json=rule_body(), headers=admin.headers).status_code == 201
        stamp = (datetime.now(UTC) - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
        failed = {"agent_name": "a", "command": "c", "execution_time_ms": 10, "success": False, "timestamp": stamp}
        collected = client.post("/mcp/metrics/collect", json=[failed] * 3, headers={"X-API-Key": key})
        assert collected.status_code == 201, collected.get_json()
        assert client.post("/v1/events", json={"events": [make_event()]}).status_code == 200
    finally:
        state.close()
    old = int((datetime.now(UTC) - timedelta(days=200)).timestamp()) // 3600 * 3600
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE events SET timestamp_hour = ?", (old,))


def background_work(path: Path) -> dict[str, Any]:
    """What the background loops change: alerts fired, events kept, deliveries' states."""
    conn = sqlite3.connect(path)
    try:
        return {
            "alerts": conn.execute("SELECT COUNT(*) FROM alert_events").fetchone()[0],
            "rules": conn.execute("SELECT state, next_evaluation_at FROM alert_rules").fetchall(),
            "events": conn.execute("SELECT COUNT(*) FROM events").fetchone()[0],
            "deliveries": conn.execute("SELECT status, attempts FROM webhook_deliveries").fetchall(),
        }
    finally:
        conn.close()


def flask(database: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`flask --app app ...` in a subprocess, as an operator runs it."""
    env = {
        **os.environ,
        "WEATHER_METRICS_CONFIG": os.devnull,
        "WEATHER_METRICS_DATABASE": str(database),
        "WEATHER_METRICS_JWT_SECRET": TEST_JWT_SECRET,
        "WEATHER_METRICS_WEBHOOK_ALLOW_PRIVATE": "true",
    }
    argv = [sys.executable, "-m", "flask", "--app", "app", *args]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_commands_fire_prune_and_deliver_nothing_the_served_app_does(tmp_path: Path, receiver: Receiver) -> None:
    path = tmp_path / "metrics.db"
    seed(path, receiver.url)
    before = background_work(path)
    assert before["alerts"] == 0 and before["events"] == 1 and before["deliveries"] == [("pending", 0)]

    created = flask(path, "create-org", "Beta", "--admin", "boss@beta.test")
    assert created.returncode == 0, created.stderr
    backed_up = flask(path, "backup", str(tmp_path / "backup.db"))
    assert backed_up.returncode == 0, backed_up.stderr
    assert background_work(path) == before
    assert receiver.posts == []

    with Server(path, webhook_allow_private="true"):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            served = background_work(path)
            if served["alerts"] and not served["events"] and served["deliveries"] == [("delivered", 1)]:
                break
            time.sleep(0.2)
    assert (served["alerts"], served["events"], served["deliveries"]) == (1, 0, [("delivered", 1)])
    assert receiver.posts == ["/hook"]
