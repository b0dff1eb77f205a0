"""POST /v1/events in front of Flask (web/v1/shortcut.py): the same answers as the view, counted once.

Each test sends the same request to the whole app and to the Flask app behind the shortcut, and
counts which requests reached Flask, so a test fails both when the answers differ and when the
shortcut takes nothing (or takes what it must pass on).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import Client, EnvironBuilder, TestResponse

from tests.support import make_event, scraped
from weather_metrics.core.errors import NotStored
from weather_metrics.runtime.loop_answers import LOOP, Declined, Later
from weather_metrics.web.v1.shortcut import RATE_DECISION


class Counted:
    """The Flask app behind the shortcut, counting the requests that reach it."""

    def __init__(self, app: Flask) -> None:
        self.inner = app.wsgi_app.app  # type: ignore[attr-defined]
        self.calls = 0
        app.wsgi_app.app = self  # type: ignore[attr-defined]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        self.calls += 1
        return self.inner(environ, start_response)  # type: ignore[no-any-return]


def post(client: Any, events: list[dict[str, Any]], **headers: str) -> TestResponse:
    body = json.dumps({"events": events}).encode()
    return client.post("/v1/events", data=body, content_type="application/json", headers=headers)  # type: ignore[no-any-return]


def shape(response: TestResponse) -> tuple[int, list[str], bytes]:
    """Status, header names in order, and the body's bytes with its moment blanked."""
    moment = response.get_json().get("timestamp", "")
    body = response.get_data().replace(moment.encode(), b"<moment>") if moment else response.get_data()
    return response.status_code, [name.lower() for name, _ in response.headers], body


@pytest.fixture
def two_ways(make_app: Callable[..., Flask]) -> Callable[..., tuple[Flask, Counted, Client]]:
    """An app, its counted Flask app, and a client that talks to the Flask app directly."""

    def build(**settings: Any) -> tuple[Flask, Counted, Client]:
        app = make_app(**settings)
        flask_app = Counted(app)
        return app, flask_app, Client(flask_app.inner)

    return build


def test_an_accepted_batch_gets_the_views_answer_without_reaching_flask(two_ways):
    app, flask_app, direct = two_ways()
    batch = [make_event(), make_event(tool="get_alerts", status="error", error_type="timeout")]

    short = post(app.test_client(), batch, **{"X-Request-ID": "client-id-0001"})
    assert flask_app.calls == 0
    viewed = post(direct, batch, **{"X-Request-ID": "client-id-0002"})

    assert shape(short) == shape(viewed)
    assert shape(short)[2] == b'{"status":"accepted","count":2,"timestamp":"<moment>"}\n'
    assert short.headers["Content-Length"] == viewed.headers["Content-Length"]
    assert short.headers["X-Request-ID"] == "client-id-0001"
    assert short.headers["Content-Type"] == viewed.headers["Content-Type"] == "application/json"
    ids = [r.headers["X-Request-ID"] for r in (post(app.test_client(), batch, **{"X-Request-ID": "bad id"}),)]
    assert ids[0] != "bad id" and len(ids[0]) == 32  # not echoed: not safe to log


@pytest.mark.parametrize(
    "variant",
    [
        {"headers": {"Idempotency-Key": "key-00000001"}},
        {"query": "?pretty=1"},
        {"events": []},  # refused: Flask's view gives every problem its message
        {"body": b"{not json"},
    ],
    ids=["idempotency-key", "query-string", "invalid-batch", "malformed-json"],
)
def test_what_the_shortcut_does_not_take_reaches_flask_once(two_ways, variant):
    app, flask_app, _ = two_ways()
    body = variant.get("body") or json.dumps({"events": variant.get("events", [make_event()])}).encode()
    response = app.test_client().post(
        "/v1/events" + variant.get("query", ""),
        data=body,
        content_type="application/json",
        headers=variant.get("headers"),
    )
    assert flask_app.calls == 1
    assert response.status_code in (200, 400)
    assert "X-Request-ID" in response.headers


def test_a_request_spends_one_token_whichever_way_it_is_answered(two_ways):
    """rate_limit_per_minute 6 plus a burst: remaining falls by one per request, and the 429 comes from Flask."""
    app, flask_app, _ = two_ways(rate_limit_per_minute=6, rate_limit_burst=0)
    client = app.test_client()
    remaining = []
    for events in ([make_event()], [], [make_event()], [], [make_event()], [make_event()]):
        response = post(client, events)
        assert response.status_code == (200 if events else 400)
        remaining.append(int(response.headers["X-RateLimit-Remaining"]))
    assert remaining == [5, 4, 3, 2, 1, 0]
    assert flask_app.calls == 2  # the two empty batches

    refused = post(client, [make_event()])
    assert refused.status_code == 429
    assert refused.get_json()["error"] == "rate_limit_exceeded"
    assert int(refused.headers["Retry-After"]) >= 1
    assert flask_app.calls == 3


def test_a_batch_the_writer_refuses_gets_the_views_503(make_app):
    """The writer is stopped: the shortcut offers the batch once and Flask gives the /v1 503."""
    app = make_app()
    flask_app = Counted(app)
    writer = app.extensions["weather_metrics"].writer
    writer.close()
    offered = []
    submit = writer.submit
    writer.submit = lambda batch: offered.append(batch) or submit(batch)

    refused = post(app.test_client(), [make_event()])
    assert flask_app.calls == 1
    assert len(offered) == 1  # not offered again by the view: a batch whose commit is late may yet be stored
    assert refused.status_code == 503
    assert refused.get_json()["error"] == "service_unavailable"
    assert "writer has stopped" in refused.get_json()["details"]
    assert refused.headers["Retry-After"] == str(app.extensions["weather_metrics"].settings["retry_after_seconds"])


def test_requests_taken_by_the_shortcut_are_counted_and_timed(two_ways):
    app, flask_app, _ = two_ways()
    client = app.test_client()
    labels = {"method": "POST", "route": "/v1/events", "status_code": "200"}
    before = scraped(client, "http_requests_total", labels)
    timed = scraped(client, "http_request_duration_seconds_count", labels)
    for _ in range(3):
        assert post(client, [make_event()]).status_code == 200
    assert flask_app.calls == 2  # the two /metrics scrapes only
    assert scraped(client, "http_requests_total", labels) == before + 3
    assert scraped(client, "http_request_duration_seconds_count", labels) == timed + 3


def test_any_other_error_offering_a_batch_gets_the_v1_error_body(make_app):
    """The database refused the batch (NotStored): the /v1 500 body, as the view gives, not the server's own page."""
    app = make_app()
    flask_app = Counted(app)
    intake = app.extensions["weather_metrics"].intake
    offered = []

    def refused(raw: bytes) -> None:
        offered.append(raw)
        raise NotStored("the database refused the batch")

    intake.accept_plain = refused
    answer = post(app.test_client(), [make_event()])
    assert (flask_app.calls, len(offered)) == (1, 1)
    assert answer.status_code == 500
    assert answer.get_json() == {"error": "internal_server_error", "details": "An unexpected error occurred"}


def test_the_event_loop_never_waits_for_a_thread_that_holds_the_validation_gate(make_app):
    """An organization's upload or a keyed batch holds the gate in a thread: the loop passes the batch on instead."""
    app = make_app()
    intake = app.extensions["weather_metrics"].intake
    body = json.dumps({"events": [make_event()]}).encode()
    committed: list[Any] = []

    def offered() -> Any:
        environ = EnvironBuilder("/v1/events", method="POST", data=body, content_type="application/json").get_environ()
        environ[LOOP] = committed.append
        return app.wsgi_app(environ, lambda *_: None)

    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with intake.cpu_gate:
            held.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    started = time.monotonic()
    try:
        answer = offered()
    finally:
        release.set()
        holder.join(5)
    assert time.monotonic() - started < 1
    assert isinstance(answer, Declined) and answer.carried[RATE_DECISION].allowed
    assert isinstance(offered(), Later)  # the gate free again: queued by the loop
