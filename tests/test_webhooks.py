"""Webhooks: /mcp/hooks routes, signed deliveries to a real receiver, retries, disabling, and the SSRF guard."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask

from tests.support import assert_api_error, scraped, seed_org
from weather_metrics.store.db import database
from weather_metrics.webhooks import deliveries as webhooks
from weather_metrics.webhooks.transport import DeliveryError, checked_addresses, post

SECRET = "receiver-secret-0123456789"
PAYLOAD_FIELDS = {"event", "organization_id", "batch_id", "metric_count", "timestamp", "signature"}
FORBIDDEN = [
    "127.0.0.1",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "224.0.0.1",
    "0.0.0.0",
    "::1",
    "fe80::1",
    "fc00::1",
    "::ffff:127.0.0.1",
]
PUBLIC = "93.184.216.34"


# -- a real receiver ---------------------------------------------------------------------------


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that records what it gets and checks each signature itself."""

    server: http.server.ThreadingHTTPServer
    statuses: list[int] = field(default_factory=lambda: [200])  # answered in turn; the last one repeats
    delay: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait_for(self, count: int, seconds: float = 10.0) -> None:
        deadline = time.monotonic() + seconds
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.requests) >= count, self.requests


def verified(raw: bytes, headers: Any, secret: str) -> bool:
    """docs/mcp.md's check: HMAC over `timestamp.body-without-signature`, constant-time, at most 5 minutes old."""
    timestamp = headers["X-Webhook-Timestamp"]
    if abs(time.time() - int(timestamp)) > 300:
        return False
    signed = raw.rsplit(b',"signature":', 1)[0] + b"}"
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers["X-Webhook-Signature"]) and hmac.compare_digest(
        expected, json.loads(raw)["signature"]
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    holder: list[Receiver] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            rec = holder[0]
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            rec.requests.append(
                {
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": json.loads(raw),
                    "valid": verified(raw, self.headers, SECRET),
                }
            )
            time.sleep(rec.delay)
            status = rec.statuses[min(len(rec.requests), len(rec.statuses)) - 1]
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder.append(Receiver(server))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield holder[0]
    server.shutdown()
    server.server_close()


# -- helpers -----------------------------------------------------------------------------------


@dataclass
class Org:
    id: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.key}


def make_org(app: Flask, name: str) -> Org:
    admin = seed_org(app, name)["admin"]
    secret = app.test_client().post("/api/keys", json={"name": "k"}, headers=admin.headers).get_json()["secret"]
    return Org(admin.user.organization_id, secret)


def stopped(app: Flask) -> Flask:
    """The app with its deliverer threads stopped: the test steps deliveries itself."""
    app.extensions["weather_metrics"].webhooks.close()
    return app


def registration(org: Org, url: str, events: list[str] | None = None, **changes: Any) -> dict[str, Any]:
    body = {"hook_url": url, "events": events or ["metrics.collected"], "organization_id": org.id, "secret": SECRET}
    return {**body, **changes}


def register(app: Flask, org: Org, url: str, events: list[str] | None = None) -> str:
    response = app.test_client().post("/mcp/hooks/register", json=registration(org, url, events), headers=org.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]  # type: ignore[no-any-return]


def collect(app: Flask, org: Org, count: int = 1) -> str:
    stamp = (datetime.now(UTC) - timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    item = {"agent_name": "runner", "command": "pytest", "execution_time_ms": 80, "success": True, "timestamp": stamp}
    response = app.test_client().post("/mcp/metrics/collect", json=[item] * count, headers=org.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["batch_id"]  # type: ignore[no-any-return]


def deliveries(app: Flask, count: int | None = None) -> list[dict[str, Any]]:
    """Rows of webhook_deliveries, oldest first; with `count`, waits for the writer's hook to add them."""
    deadline = time.monotonic() + 5
    while True:
        with app.app_context():
            rows = [
                dict(
                    zip(("id", "webhook_id", "status", "attempts", "next_attempt_at", "attempt_log"), row, strict=True)
                )
                for row in database.execute_sql(
                    "SELECT id, webhook_id, status, attempts, next_attempt_at, attempt_log "
                    "FROM webhook_deliveries ORDER BY created_at, id"
                )
            ]
        if count is None or len(rows) >= count or time.monotonic() > deadline:
            assert count is None or len(rows) == count, rows
            return rows


def step(app: Flask, now: datetime) -> bool:
    with app.app_context():
        return app.extensions["weather_metrics"].webhooks.run_once(now)  # type: ignore[no-any-return]


DELIVERIES = "weather_metrics_webhook_deliveries_total"
OUTCOMES = ("delivered", "retried", "failed")


def outcomes(app: Flask) -> dict[str, float]:
    """weather_metrics_webhook_deliveries_total by outcome, and webhooks disabled, from /metrics."""
    client = app.test_client()
    counted = {outcome: scraped(client, DELIVERIES, {"outcome": outcome}) for outcome in OUTCOMES}
    return {**counted, "disabled": scraped(client, "weather_metrics_webhooks_disabled_total")}


def moved(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before[name] for name in before if after[name] != before[name]}


@pytest.fixture
def private_app(make_app: Callable[..., Flask]) -> Flask:
    return stopped(make_app(webhook_allow_private=True, webhook_max_attempts=4, webhook_disable_after_failures=3))


# -- routes ------------------------------------------------------------------------------------


def test_register_list_deliveries_and_delete(private_app, receiver):
    org = make_org(private_app, "Acme")
    client = private_app.test_client()
    response = client.post("/mcp/hooks/register", json=registration(org, receiver.url), headers=org.headers)
    assert response.status_code == 201
    hook = response.get_json()
    assert hook["status"] == "registered" and hook["hook_url"] == receiver.url and hook["enabled"] is True
    assert hook["events"] == ["metrics.collected"] and hook["secret_hint"] == "****" + SECRET[-4:]
    listed = client.get("/mcp/hooks", headers=org.headers)
    assert [h["id"] for h in listed.get_json()["webhooks"]] == [hook["id"]]
    for answer in (response, listed):
        assert SECRET not in answer.get_data(as_text=True)
    with private_app.app_context():  # stored encrypted, not as given
        stored = database.execute_sql("SELECT secret_encrypted FROM webhooks").fetchone()[0]
    assert SECRET not in stored
    log = client.get(f"/mcp/hooks/{hook['id']}/deliveries", headers=org.headers)
    assert log.status_code == 200 and log.get_json()["deliveries"] == []
    assert client.delete(f"/mcp/hooks/{hook['id']}", headers=org.headers).status_code == 204
    assert client.get("/mcp/hooks", headers=org.headers).get_json()["webhooks"] == []
    assert_api_error(client.delete(f"/mcp/hooks/{hook['id']}", headers=org.headers), 404)


def test_every_route_needs_an_api_key(private_app):
    client = private_app.test_client()
    assert_api_error(client.post("/mcp/hooks/register", json={}), 401)
    assert_api_error(client.get("/mcp/hooks"), 401)
    assert_api_error(client.delete("/mcp/hooks/x"), 401)
    assert_api_error(client.get("/mcp/hooks/x/deliveries"), 401)
    assert_api_error(client.get("/mcp/hooks", headers={"X-API-Key": "wm_live_not-a-key"}), 401)


def test_another_organizations_id_and_hooks_are_404(private_app, receiver):
    acme, globex = make_org(private_app, "Acme"), make_org(private_app, "Globex")
    client = private_app.test_client()
    error = assert_api_error(
        client.post("/mcp/hooks/register", json=registration(globex, receiver.url), headers=acme.headers), 404
    )
    assert error["message"] == f"Organization {globex.id} not found"
    hook_id = register(private_app, acme, receiver.url)
    assert client.get("/mcp/hooks", headers=globex.headers).get_json()["webhooks"] == []
    assert_api_error(client.get(f"/mcp/hooks/{hook_id}/deliveries", headers=globex.headers), 404)
    assert_api_error(client.delete(f"/mcp/hooks/{hook_id}", headers=globex.headers), 404)
    assert len(client.get("/mcp/hooks", headers=acme.headers).get_json()["webhooks"]) == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"hook_url": None}, "hook_url"),
        ({"hook_url": "ftp://example.com/x"}, "hook_url"),
        ({"hook_url": "http:///no-host"}, "hook_url"),
        ({"hook_url": "https://" + "a" * 2050 + ".com/"}, "hook_url"),
        ({"hook_url": "https://user:pw@example.com/"}, "hook_url"),
        ({"hook_url": 42}, "hook_url"),
        ({"events": []}, "events"),
        ({"events": "metrics.collected"}, "events"),
        ({"events": ["metrics.deleted"]}, "events"),
        ({"secret": "short"}, "secret"),
        ({"secret": "x" * 257}, "secret"),
        ({"secret": None}, "secret"),
        ({"organization_id": None}, "organization_id"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_a_bad_registration_is_400_naming_the_field(private_app, change, field):
    org = make_org(private_app, "Acme")
    body = {**registration(org, "http://127.0.0.1:9/hook"), **change}
    body = {k: v for k, v in body.items() if v is not None}
    error = assert_api_error(private_app.test_client().post("/mcp/hooks/register", json=body, headers=org.headers), 400)
    assert field in error["details"], error


@pytest.mark.parametrize("raw", [b"not json", b"[]", b'"text"', b"{"])
def test_a_body_that_is_not_an_object_is_400(private_app, raw):
    org = make_org(private_app, "Acme")
    response = private_app.test_client().post(
        "/mcp/hooks/register", data=raw, headers={**org.headers, "Content-Type": "application/json"}
    )
    assert_api_error(response, 400)


def test_an_organization_has_at_most_20_webhooks(private_app, receiver):
    org = make_org(private_app, "Acme")
    for _ in range(webhooks.MAX_PER_ORGANIZATION):
        register(private_app, org, receiver.url)
    response = private_app.test_client().post(
        "/mcp/hooks/register", json=registration(org, receiver.url), headers=org.headers
    )
    assert "at most 20" in assert_api_error(response, 400)["message"]


# -- delivery ----------------------------------------------------------------------------------


def test_a_collected_batch_is_delivered_signed_to_each_subscribed_webhook(private_app, receiver):
    org = make_org(private_app, "Acme")
    first, second = register(private_app, org, receiver.url), register(private_app, org, receiver.url)
    register(private_app, org, receiver.url, events=["alert.triggered"])  # not subscribed to metrics.collected
    batch_id = collect(private_app, org, count=3)
    rows = deliveries(private_app, count=2)
    assert sorted(row["webhook_id"] for row in rows) == sorted([first, second])
    now, before = datetime.now(UTC), outcomes(private_app)
    assert step(private_app, now) and step(private_app, now) and not step(private_app, now)
    assert moved(before, outcomes(private_app)) == {"delivered": 2}
    assert len(receiver.requests) == 2
    for got in receiver.requests:
        body, headers = got["body"], got["headers"]
        assert got["valid"], got
        assert set(body) == PAYLOAD_FIELDS
        assert body["event"] == "metrics.collected" and body["organization_id"] == org.id
        assert body["batch_id"] == batch_id and body["metric_count"] == 3
        assert abs(datetime.fromisoformat(body["timestamp"]).timestamp() - now.timestamp()) < 60
        assert headers["X-Webhook-Signature"] == body["signature"]
        assert headers["X-Webhook-Timestamp"] == str(int(now.timestamp()))
        assert headers["X-Webhook-Event"] == "metrics.collected"
    assert {got["headers"]["X-Webhook-Delivery"] for got in receiver.requests} == {row["id"] for row in rows}
    log = private_app.test_client().get(f"/mcp/hooks/{first}/deliveries", headers=org.headers).get_json()
    (delivery,) = log["deliveries"]
    assert delivery["status"] == "delivered" and delivery["attempts"] == 1
    assert delivery["log"][0]["status_code"] == 200 and delivery["log"][0]["error"] is None


def test_a_failing_receiver_gets_retries_at_growing_intervals_then_the_delivery_is_given_up(private_app, receiver):
    receiver.statuses = [500]
    org = make_org(private_app, "Acme")
    hook_id = register(private_app, org, receiver.url)
    collect(private_app, org)
    deliveries(private_app, count=1)
    now, before = datetime.now(UTC), outcomes(private_app)
    gaps = []
    for attempt in range(1, 5):
        assert step(private_app, now)
        (row,) = deliveries(private_app)
        assert row["attempts"] == attempt
        if attempt < 4:
            gap = row["next_attempt_at"] - int(now.timestamp())
            gaps.append(gap)
            assert not step(private_app, now + timedelta(seconds=gap - 1))  # not due before its time
            now += timedelta(seconds=gap)
    for attempt, gap in enumerate(gaps, start=1):
        base = 30 * 2 ** (attempt - 1)
        assert 0.8 * base - 1 <= gap <= 1.2 * base + 1, gaps
    assert row["status"] == "failed" and len(receiver.requests) == 4
    assert moved(before, outcomes(private_app)) == {"retried": 3, "failed": 1}
    assert not step(private_app, now + timedelta(hours=2))  # given up: never sent again
    log = private_app.test_client().get(f"/mcp/hooks/{hook_id}/deliveries", headers=org.headers).get_json()
    assert [entry["attempt"] for entry in log["deliveries"][0]["log"]] == [1, 2, 3, 4]
    assert {entry["status_code"] for entry in log["deliveries"][0]["log"]} == {500}
    assert log["webhook"]["consecutive_failures"] == 1 and log["webhook"]["enabled"] is True


def test_a_webhook_is_disabled_after_repeated_failed_deliveries(private_app, receiver):
    receiver.statuses = [410]  # a 4xx other than 429: no retry can help
    org = make_org(private_app, "Acme")
    hook_id = register(private_app, org, receiver.url)
    for _ in range(3):
        collect(private_app, org)
    deliveries(private_app, count=3)
    now = datetime.now(UTC)
    while step(private_app, now):
        pass
    assert [row["attempts"] for row in deliveries(private_app)] == [1, 1, 1]  # never retried
    hook = private_app.test_client().get("/mcp/hooks", headers=org.headers).get_json()["webhooks"][0]
    assert hook["id"] == hook_id and hook["enabled"] is False
    assert "3 consecutive failed deliveries" in hook["disabled_reason"] and "410" in hook["disabled_reason"]
    collect(private_app, org)
    time.sleep(0.3)
    assert len(deliveries(private_app)) == 3  # a disabled webhook gets no new deliveries


def test_each_failed_attempt_is_logged_with_its_ids_and_what_follows_never_the_url_or_secret(
    private_app, receiver, caplog
):
    receiver.statuses = [500, 410]  # the first attempt is retried; 410 is given up at once
    org = make_org(private_app, "Acme")
    hook_id = register(private_app, org, receiver.url + "?key=receiver-token-in-the-url")
    for _ in range(3):
        collect(private_app, org)
    first, second, third = (row["id"] for row in deliveries(private_app, count=3))
    now = datetime.now(UTC)
    with caplog.at_level(logging.WARNING, logger=webhooks.__name__):
        while step(private_app, now):
            pass
        assert step(private_app, now + timedelta(hours=1))  # the first delivery's second attempt
    records = [r for r in caplog.records if r.name == webhooks.__name__]
    assert [r.levelno for r in records] == [logging.WARNING] * 4
    assert [(r.delivery_id, r.attempt, r.status_code, r.will_retry) for r in records] == [
        (first, 1, 500, True),
        (second, 1, 410, False),
        (third, 1, 410, False),
        (first, 2, 410, False),
    ]
    assert {r.webhook_id for r in records} == {hook_id} and {r.organization_id for r in records} == {org.id}
    assert [r.webhook_disabled for r in records] == [False, False, False, True]
    messages = [r.getMessage() for r in records]
    assert messages[0].startswith(f"webhook {hook_id} delivery {first} attempt 1 failed: receiver answered 500;")
    assert "retrying in" in messages[0] and messages[1].endswith("; given up")
    assert messages[3].endswith(
        "given up; webhook disabled (webhook_disable_after_failures), 0 pending deliveries failed with it"
    )
    everything = caplog.text + "".join(str(vars(r)) for r in records)
    assert "receiver-token-in-the-url" not in everything and SECRET not in everything


def test_disabling_a_webhook_fails_its_pending_deliveries_and_metrics_count_them(private_app, receiver):
    receiver.statuses = [410]
    org = make_org(private_app, "Acme")
    register(private_app, org, receiver.url)
    for _ in range(5):
        collect(private_app, org)
    deliveries(private_app, count=5)
    before = outcomes(private_app)
    now = datetime.now(UTC)
    while step(private_app, now):
        pass
    assert len(receiver.requests) == 3  # the third failure disabled it; two were never sent
    assert [row["status"] for row in deliveries(private_app)] == ["failed"] * 5
    assert moved(before, outcomes(private_app)) == {"failed": 5, "disabled": 1}


def test_a_redirect_is_not_followed(private_app, receiver):
    receiver.statuses = [302, 200]
    org = make_org(private_app, "Acme")
    register(private_app, org, receiver.url)
    collect(private_app, org)
    deliveries(private_app, count=1)
    assert step(private_app, datetime.now(UTC))
    (row,) = deliveries(private_app)
    assert row["status"] == "failed" and "redirect not followed" in row["attempt_log"]
    assert [got["path"] for got in receiver.requests] == ["/hook"]


def test_a_receiver_slower_than_the_timeout_is_retried(make_app, receiver):
    app = stopped(make_app(webhook_allow_private=True, webhook_timeout_seconds=0.2))
    receiver.delay = 1.0
    org = make_org(app, "Acme")
    register(app, org, receiver.url)
    collect(app, org)
    deliveries(app, count=1)
    assert step(app, datetime.now(UTC))
    (row,) = deliveries(app)
    assert row["status"] == "pending" and "timed out" in row["attempt_log"]


def test_a_pending_delivery_is_sent_by_the_app_after_a_restart(make_app, receiver):
    first = stopped(make_app(webhook_allow_private=True))
    org = make_org(first, "Acme")
    register(first, org, receiver.url)
    collect(first, org)
    deliveries(first, count=1)
    first.extensions["weather_metrics"].close()
    make_app(webhook_allow_private=True)  # same database file; its deliverer thread runs
    receiver.wait_for(1)
    assert receiver.requests[0]["valid"] and receiver.requests[0]["body"]["organization_id"] == org.id


# -- SSRF guard --------------------------------------------------------------------------------


def url_of(host: str) -> str:
    return f"http://[{host}]:8080/hook" if ":" in host else f"http://{host}:8080/hook"


@pytest.mark.parametrize("host", [*FORBIDDEN, "localhost"])
def test_registration_refuses_non_public_targets(make_app, host):
    app = stopped(make_app())
    org = make_org(app, "Acme")
    response = app.test_client().post("/mcp/hooks/register", json=registration(org, url_of(host)), headers=org.headers)
    assert "refused" in assert_api_error(response, 400)["details"]["hook_url"]


def test_registration_takes_a_public_address(make_app):
    app = stopped(make_app())
    register(app, make_org(app, "Acme"), f"https://{PUBLIC}/hook")


@pytest.mark.parametrize("address", FORBIDDEN)
def test_delivery_refuses_a_name_that_resolves_to_a_non_public_address(address):
    def resolver(host: str, port: int, *_args: Any) -> list[tuple[Any, ...]]:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [
            (family, socket.SOCK_STREAM, 6, "", (PUBLIC, port)),
            (family, socket.SOCK_STREAM, 6, "", (address, port)),
        ]

    with pytest.raises(DeliveryError, match="refused") as caught:
        post("https://hooks.example.test/x", b"{}", {}, 1.0, allow_private=False, resolver=resolver)
    assert caught.value.retryable is False
    assert checked_addresses("hooks.example.test", 443, True, resolver)  # allowed when private targets are


def test_delivery_time_check_refuses_localhost_even_when_registration_was_bypassed(make_app, receiver):
    app = stopped(make_app())
    org = make_org(app, "Acme")
    url = receiver.url.replace("127.0.0.1", "localhost")
    with app.app_context():
        hook = webhooks.register(
            org.id, registration(org, url), app.extensions["weather_metrics"].webhooks.box, datetime.now(UTC)
        )
    collect(app, org)
    deliveries(app, count=1)
    assert step(app, datetime.now(UTC))
    (row,) = deliveries(app)
    assert row["webhook_id"] == hook.id and row["status"] == "failed" and row["attempts"] == 1
    assert "refused: localhost resolves to" in row["attempt_log"]
    assert receiver.requests == []


def test_webhook_allow_private_reads_true_and_false_words(make_app):
    from weather_metrics.settings import SettingsError, load_settings

    assert load_settings(environ={"WEATHER_METRICS_WEBHOOK_ALLOW_PRIVATE": "true"})["webhook_allow_private"] is True
    assert load_settings(environ={})["webhook_allow_private"] is False
    with pytest.raises(SettingsError, match="webhook_allow_private"):
        load_settings({"webhook_allow_private": "maybe"}, environ={})


@pytest.fixture
def dripping_receiver() -> Iterator[str]:
    """A receiver that reads the request, then answers one byte every 0.3 s (a whole answer would take a minute)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                conn.recv(65536)
                for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n" + b"X-Pad: " + b"y" * 200 + b"\r\n\r\n":
                    if stop.is_set():
                        return
                    conn.send(bytes([byte]))
                    time.sleep(0.3)
            except OSError:
                return

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    stop.set()
    listener.close()


def test_an_attempt_has_a_total_deadline_whatever_the_receiver_drips(make_app, dripping_receiver):
    app = stopped(make_app(webhook_allow_private=True, webhook_timeout_seconds=1))
    org = make_org(app, "Acme")
    register(app, org, dripping_receiver)
    collect(app, org)
    deliveries(app, count=1)
    started = time.monotonic()
    assert step(app, datetime.now(UTC))
    assert time.monotonic() - started < 5  # the timeout is 1 s; each byte came within it, for a minute
    (row,) = deliveries(app)
    assert row["status"] == "pending" and "timed out" in row["attempt_log"]


def test_a_dripping_receiver_of_one_organization_does_not_delay_anothers(make_app, dripping_receiver, receiver):
    app = make_app(webhook_allow_private=True, webhook_timeout_seconds=30, webhook_workers=2)
    acme, globex = make_org(app, "Acme"), make_org(app, "Globex")
    register(app, acme, dripping_receiver)
    register(app, globex, receiver.url)
    for _ in range(3):
        collect(app, acme)  # three of Acme's deliveries due first, each held 30 s by its receiver
    deliveries(app, count=3)
    time.sleep(1.0)  # the deliverer threads have taken Acme's first
    collect(app, globex)
    receiver.wait_for(1, seconds=5)  # not after Acme's 30-second attempts
    assert receiver.requests[0]["body"]["organization_id"] == globex.id


def test_a_registration_does_not_wait_on_a_slow_name_server():
    """A hook URL whose name server does not answer is accepted (each delivery checks it again), at once."""

    def silent(*args: Any) -> list[tuple[Any, ...]]:
        time.sleep(20)
        return []

    body = {"hook_url": "https://slow.example/hook", "events": ["alert.triggered"], "secret": "s" * 32}
    started = time.monotonic()
    assert "hook_url" not in webhooks.validation_problems(body, allow_private=False, resolver=silent)
    assert time.monotonic() - started < 10


def test_a_batch_is_acknowledged_with_its_deliveries_already_stored(private_app, receiver):
    """Deliveries commit with the rows: a crash after the commit loses none; a later webhook hears nothing of it."""
    org = make_org(private_app, "Acme")
    register(private_app, org, receiver.url)
    writer = private_app.extensions["weather_metrics"].writer
    listener = writer._on_commit

    def slow_listener(*args: Any) -> None:  # what runs after the acknowledgement may be late
        time.sleep(1)
        listener(*args)

    writer._on_commit = slow_listener
    collect(private_app, org)
    with private_app.app_context():
        stored = webhooks.WebhookDelivery.select().count()
    assert stored == 1
