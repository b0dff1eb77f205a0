"""Claims across instances: each due alert fires once, each delivery and export runs once.

End to end, two gunicorn instances on one PostgreSQL sharing one export folder
(docs/scaling.md), so an export built by one downloads from the other; every check runs
several rounds, each making work due for both at the same moment. In process, on either
backend, two claimers read the same candidate while the write lock is held elsewhere,
then claim in turn: exactly one may win.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from tests import databases
from tests.support import TEST_JWT_SECRET, Server, http, rule_body, seed_org, started
from weather_metrics import create_app
from weather_metrics.alerts.evaluator import AlertEvaluator
from weather_metrics.reports.jobs import create_job
from weather_metrics.reports.runner import ReportRunner
from weather_metrics.store.db import WRITE_LOCK, database
from weather_metrics.store.models import WebhookDelivery
from weather_metrics.webhooks.deliveries import WebhookDeliverer, enqueue

ROUNDS = 2
RULES = 6  # rules made due at once in each round
EXPORTS = 4  # exports requested at once in each round
SECRET = "s" * 32


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1 that records the delivery id of every POST."""

    server: ThreadingHTTPServer
    deliveries: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@dataclass
class Cluster:
    first: Server
    second: Server
    url: str  # the database both use
    export_dir: Path
    admin: dict[str, str]  # the admin's headers
    receiver: Receiver


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    holder: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            self.rfile.read(int(self.headers["Content-Length"]))
            holder[0].deliveries.append(self.headers["X-Webhook-Delivery"])
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder.append(Receiver(server))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield holder[0]
    server.shutdown()
    server.server_close()


def seed(url: str, export_dir: Path, hook_url: str) -> dict[str, str]:
    """An organization with failing executions a minute old and a webhook on alert.triggered; the admin's headers."""
    settings = {"database": url, "jwt_secret": TEST_JWT_SECRET, "password_time_cost": 2, "password_memory_kib": 19456}
    app = create_app({**settings, "export_dir": str(export_dir), "webhook_allow_private": True})
    try:
        admin = seed_org(app, "Acme")["admin"]
        client = app.test_client()
        key = client.post("/api/keys", json={"name": "k"}, headers=admin.headers).get_json()["secret"]
        hook = {"hook_url": hook_url, "events": ["alert.triggered"], "organization_id": admin.user.organization_id}
        response = client.post("/mcp/hooks/register", json={**hook, "secret": SECRET}, headers={"X-API-Key": key})
        assert response.status_code == 201, response.get_json()
        stamp = (datetime.now(UTC) - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
        failed = {"agent_name": "a", "command": "c", "execution_time_ms": 10, "success": False, "timestamp": stamp}
        collected = client.post("/mcp/metrics/collect", json=[failed] * 3, headers={"X-API-Key": key})
        assert collected.status_code == 201, collected.get_json()
    finally:
        app.extensions["weather_metrics"].close()
    return admin.headers


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[Cluster]:
    folder = tmp_path_factory.mktemp("claims")
    url = databases.postgresql_location(folder / "metrics.db", fresh=True)
    export_dir = folder / "shared-exports"  # one folder for both, as an NFS mount would be
    admin = seed(url, export_dir, receiver.url)
    settings = {
        "export_dir": export_dir,
        "webhook_allow_private": "true",
        "alert_evaluation_seconds": 1,
        "export_rate_limit": "1000 per hour",
    }
    first, second = Server(folder / "first.db", **settings), Server(folder / "second.db", **settings)
    for server in (first, second):
        server.env["WEATHER_METRICS_DATABASE"] = url  # both on one database; logs beside their own names
    with started(first, second):
        yield Cluster(first, second, url, export_dir, admin, receiver)


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall() if cursor.description else []
    finally:
        conn.close()


def settled(check: Callable[[], bool], seconds: float = 60) -> None:
    """Wait until `check` holds, then a few seconds more, in which either instance could wrongly act again."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
    time.sleep(3)  # three more evaluation periods


def test_a_due_rule_fires_once_with_one_delivery_received_once(cluster: Cluster) -> None:
    for number in range(RULES):
        body = rule_body(name=f"Errors {number}")
        status, _, answer = http("POST", cluster.first.url + "/api/alerts/rules", body, cluster.admin)
        assert status == 201, answer
    for round_number in range(1, ROUNDS + 1):
        if round_number > 1:  # every rule due again for both instances at once
            rows(cluster.url, "UPDATE alert_rules SET state = 'ok', last_fired_at = NULL, next_evaluation_at = 0")
        expected = RULES * round_number
        settled(lambda: len(cluster.receiver.deliveries) >= expected)  # noqa: B023 - called within the round
        fired = rows(cluster.url, "SELECT rule_id, COUNT(*) FROM alert_events GROUP BY rule_id")
        assert sorted(count for _rule, count in fired) == [round_number] * RULES, fired
        deliveries = rows(cluster.url, "SELECT status, attempts FROM webhook_deliveries")
        assert deliveries == [("delivered", 1)] * expected
        assert len(cluster.receiver.deliveries) == len(set(cluster.receiver.deliveries)) == expected


def job_status(server: Server, headers: dict[str, str], job_id: str) -> str:
    status, _, body = http("GET", f"{server.url}/api/reports/{job_id}", headers=headers)
    assert status == 200, body
    return str(body["status"])


def download(server: Server, headers: dict[str, str], job_id: str) -> str:
    status, _, body = http("GET", f"{server.url}/api/reports/{job_id}/download", headers=headers)
    assert status == 200, body
    return str(body)


def test_an_export_requested_on_one_instance_is_built_once_and_downloads_from_the_other(cluster: Cluster) -> None:
    request = {"format": "csv", "report_type": "productivity", "filters": {}}
    for _round in range(ROUNDS):
        jobs = []
        for _ in range(EXPORTS):
            status, _, job = http("POST", cluster.first.url + "/api/reports/export", request, cluster.admin)
            assert status == 202, job
            jobs.append(job["id"])
        settled(lambda: all(job_status(cluster.second, cluster.admin, j) == "done" for j in jobs))  # noqa: B023
        for job_id in jobs:
            attempts = rows(cluster.url, f"SELECT attempts FROM report_jobs WHERE id = '{job_id}'")
            assert attempts == [(1,)], job_id
            assert sorted(path.name for path in cluster.export_dir.glob(f"{job_id}*")) == [f"{job_id}-1.csv"]
            built = download(cluster.second, cluster.admin, job_id)
            assert built.strip(), job_id
            assert download(cluster.first, cluster.admin, job_id) == built


# -- in process, on either backend ---------------------------------------------------------------


def raced(path: Path, claims: list[Callable[[], Any]]) -> list[Any]:
    """Run the claims in threads while another connection holds the write lock, so all read first; their results."""
    url = databases.location(path)
    holder: Any = psycopg2.connect(url) if databases.ON_POSTGRESQL else sqlite3.connect(path, isolation_level=None)
    results: list[Any] = [None] * len(claims)

    def run(number: int) -> None:
        with database.connection_context():
            results[number] = claims[number]()

    try:
        if databases.ON_POSTGRESQL:
            holder.cursor().execute("SELECT pg_advisory_lock(%s)", (WRITE_LOCK,))
        else:
            holder.execute("BEGIN IMMEDIATE")
        threads = [threading.Thread(target=run, args=(number,)) for number in range(len(claims))]
        for thread in threads:
            thread.start()
        time.sleep(1.5)  # each has read its candidates and waits for the write lock
    finally:
        holder.rollback() if databases.ON_POSTGRESQL else holder.execute("ROLLBACK")
        holder.close()
    for thread in threads:
        thread.join(30)
    return results


@pytest.fixture
def quiet(make_app: Callable[..., Any]) -> Any:
    """An app whose own evaluator, deliverer and runner are stopped: the test's claimers are the only ones."""
    app = make_app(webhook_allow_private=True)
    state = app.extensions["weather_metrics"]
    for loop in (state.alerts, state.webhooks, state.reports):
        loop.close()
    return app


def test_of_two_runners_reading_one_queued_export_one_claims_it(quiet: Any, tmp_path: Path) -> None:
    state = quiet.extensions["weather_metrics"]
    admin = seed_org(quiet)["admin"]
    with quiet.app_context():
        job = create_job(admin.user, "productivity", "csv", {}, datetime.now(UTC), 3600)
        runners = [ReportRunner(state.settings) for _ in range(2)]
        claimed = raced(tmp_path / "metrics.db", [lambda r=r: r._claim(datetime.now(UTC)) for r in runners])
    assert sorted(found.id for found in claimed if found is not None) == [job.id], claimed
    assert [found.attempts for found in claimed if found is not None] == [1]


def test_of_two_evaluators_reading_one_due_rule_one_claims_it(quiet: Any, tmp_path: Path) -> None:
    state = quiet.extensions["weather_metrics"]
    admin = seed_org(quiet)["admin"]
    response = quiet.test_client().post("/api/alerts/rules", json=rule_body(), headers=admin.headers)
    assert response.status_code == 201, response.get_json()
    at = int(time.time()) + 1
    with quiet.app_context():
        evaluators = [AlertEvaluator(state.settings, state.webhooks.subscribers) for _ in range(2)]
        claimed = raced(tmp_path / "metrics.db", [lambda e=e: e._claim(at) for e in evaluators])
    assert [rule.id for rule in claimed if rule is not None] == [response.get_json()["id"]], claimed


def due_delivery(app: Any) -> int:
    """A webhook of a new organization with one delivery due now; returns now."""
    admin = seed_org(app)["admin"]
    client = app.test_client()
    key = client.post("/api/keys", json={"name": "k"}, headers=admin.headers).get_json()["secret"]
    hook = {"hook_url": "http://127.0.0.1:9/hook", "events": ["alert.triggered"], "secret": SECRET}
    hook["organization_id"] = admin.user.organization_id
    registered = client.post("/mcp/hooks/register", json=hook, headers={"X-API-Key": key})
    assert registered.status_code == 201, registered.get_json()
    at = int(time.time())
    with app.app_context():
        enqueue([registered.get_json()["id"]], "alert.triggered", {"event": "alert.triggered"}, at)
    return at


def test_of_two_deliverers_reading_one_due_delivery_one_claims_it(quiet: Any, tmp_path: Path) -> None:
    state = quiet.extensions["weather_metrics"]
    at = due_delivery(quiet)
    with quiet.app_context():
        box, subscribers = state.webhooks.box, state.webhooks.subscribers
        deliverers = [WebhookDeliverer(state.settings, box, subscribers) for _ in range(2)]
        claimed = raced(tmp_path / "metrics.db", [lambda d=d: d._claim(at) for d in deliverers])
    assert [delivery.attempts for delivery, _hook in filter(None, claimed)] == [1], claimed


def test_an_attempt_that_ends_after_its_lease_leaves_the_next_claim_alone(quiet: Any) -> None:
    state = quiet.extensions["weather_metrics"]
    at = due_delivery(quiet)
    with quiet.app_context():
        box, subscribers = state.webhooks.box, state.webhooks.subscribers
        slow, other = (WebhookDeliverer(state.settings, box, subscribers) for _ in range(2))
        first = slow._claim(at)
        assert first is not None
        later = at + slow._lease + 1  # the first attempt's lease has run out: another host claims it
        second = other._claim(later)
        assert second is not None and second[0].attempts == 2
        other._record(*second, later, {"attempt": 2, "error": None, "status_code": 200}, retry=False)
        failed = {"attempt": 1, "error": "timed out", "status_code": None}
        slow._record(*first, later + 5, failed, retry=True)  # the first attempt ends at last
        stored = WebhookDelivery.get_by_id(first[0].id)
    assert (stored.status, stored.attempts, stored.last_error) == ("delivered", 2, None)
    assert [entry["attempt"] for entry in json.loads(stored.attempt_log)] == [2]
