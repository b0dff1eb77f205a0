"""The relay and its bookkeeping, stepped by hand on a real database (no sockets), and its wake-up on PostgreSQL."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from typing import Any

import psycopg2
import pytest
from flask import Flask

from tests import databases
from tests.support import Member
from weather_metrics.accounts import organizations as accounts
from weather_metrics.live import events as live
from weather_metrics.live.hub import CLOSE_ACCOUNT, CLOSE_RIGHTS_CHANGED, CLOSE_TOO_SLOW, Client, Hub, text_frame
from weather_metrics.live.protocol import client_for
from weather_metrics.live.relay import Relay
from weather_metrics.live.wakeup import Wakeup
from weather_metrics.store.db import database, execute, is_postgresql, write_transaction
from weather_metrics.web.errors import ApiProblem
from weather_metrics.web.ws.admission import issue_ticket, redeem_ticket


def no_dashboards(*_args: Any) -> dict[str, Any]:
    raise AssertionError("no dashboard is subscribed here")


@pytest.fixture
def app(service) -> Flask:  # type: ignore[no-untyped-def]
    app = service()
    app.extensions["weather_metrics"].relay.close()  # the tests step their own relay
    return app  # type: ignore[no-any-return]


@pytest.fixture
def relay(app: Flask) -> Relay:
    return Relay(Hub(), app.extensions["weather_metrics"].settings, no_dashboards)


def client_of(member: Member | None, limit: int = 100) -> Client:
    return client_for(member.user if member else None, limit)


def record(organization_id: str | None, event_type: str, payload: dict[str, Any], team_id: str | None = None) -> None:
    with write_transaction():
        live.record(organization_id, event_type, payload, team_id)


def unframe(data: bytes) -> list[str]:
    """The texts of the server frames (unmasked) in `data`: what a client reads."""
    texts = []
    while data:
        assert data[0] == 0x81, data[:2]  # a final text frame
        size, start = data[1] & 0x7F, 2
        if size == 126:
            size, start = int.from_bytes(data[2:4], "big"), 4
        elif size == 127:
            size, start = int.from_bytes(data[2:10], "big"), 10
        texts.append(data[start : start + size].decode())
        data = data[start + size :]
    return texts


def sent(client: Client) -> list[dict[str, Any]]:
    return [json.loads(text) for text in unframe(client.take())]


def batch_payload(*parts: list[Any]) -> dict[str, Any]:
    return {"batch_id": "b1", "parts": [list(p) for p in parts], "timestamp": "2026-01-01T00:00:00Z"}


def test_a_first_subscriber_hears_only_what_commits_after_it_joined(app, acme, relay):
    org = acme["admin"].user.organization_id
    with app.app_context():
        record(org, live.METRIC_INGESTED, batch_payload([None, None, "agent_execution", 1]))
        relay.step()  # nobody listens: the relay only keeps its place
        admin = client_of(acme["admin"])
        relay.hub.add(admin)
        relay.hub.join(admin, "org")
        relay.step()
        assert sent(admin) == []
        record(org, live.METRIC_INGESTED, batch_payload([acme["developer"].user.id, None, "commits", 4]))
        relay.step()
    (message,) = sent(admin)
    assert message["type"] == "metric_ingested" and message["room"] == "org"
    assert message["data"]["count"] == 4 and message["data"]["user_id"] == acme["developer"].user.id
    assert message["data"]["metric_type"] == "commits"


def test_alerts_go_to_admins_and_only_to_managers_of_the_rules_team(app, acme, relay):
    org = acme["admin"].user.organization_id
    with app.app_context():
        team = accounts.create_team(org, "Platform", "")
        other = accounts.create_team(org, "Data", "")
        accounts.add_member(team, acme["manager"].user, "lead")
        admin, manager = client_of(acme["admin"]), client_of(acme["manager"])
        for client in (admin, manager):
            relay.hub.add(client)
            relay.hub.join(client, "alerts")
        relay.step()
        record(org, live.ALERT_TRIGGERED, {"rule_name": "team"}, team_id=team.id)
        record(org, live.ALERT_TRIGGERED, {"rule_name": "other team"}, team_id=other.id)
        record(org, live.ALERT_TRIGGERED, {"rule_name": "organization"})
        relay.step()
    assert [m["data"]["rule_name"] for m in sent(admin)] == ["team", "other team", "organization"]
    assert [m["data"]["rule_name"] for m in sent(manager)] == ["team"]


def test_another_organizations_events_never_reach_a_room(app, acme, relay, globex):
    with app.app_context():
        admin = client_of(acme["admin"])
        relay.hub.add(admin)
        relay.hub.join(admin, "org")
        relay.hub.join(admin, "alerts")
        relay.step()
        other = globex["admin"].user.organization_id
        record(other, live.METRIC_INGESTED, batch_payload([None, None, "agent_execution", 2]))
        record(other, live.ALERT_TRIGGERED, {"rule_name": "theirs"})
        relay.step()
    assert sent(admin) == []


def test_public_counts_are_summed_between_messages(app, relay):
    anonymous = client_of(None)
    with app.app_context():
        relay.hub.add(anonymous)
        relay.hub.join(anonymous, "public")
        relay.step()
        for count, errors in ((3, 1), (5, 0)):
            record(None, live.PUBLIC_INGESTED, {"count": count, "errors": errors, "timestamp": "t"})
        relay.step()
        record(None, live.PUBLIC_INGESTED, {"count": 2, "errors": 2, "timestamp": "t"})
        relay.step()  # within ws_public_interval_seconds of the last message: held back
    (message,) = sent(anonymous)
    assert message["room"] == "public" and (message["data"]["count"], message["data"]["errors"]) == (8, 1)


def test_a_client_whose_queue_is_full_is_dropped_not_waited_for(app, acme, relay):
    org = acme["admin"].user.organization_id
    slow, fast = client_of(acme["admin"], limit=3), client_of(acme["admin"], limit=100)
    with app.app_context():
        for client in (slow, fast):
            relay.hub.add(client)
            relay.hub.join(client, "org")
        relay.step()
        for _ in range(5):
            record(org, live.METRIC_INGESTED, batch_payload([None, None, "agent_execution", 1]))
        relay.step()
    assert slow.dropped == (CLOSE_TOO_SLOW, "Too slow: messages were not read in time")
    assert len(slow.queue) == 3 and slow.wake.is_set()
    assert len(fast.queue) == 5 and fast.dropped is None


def test_a_client_is_dropped_when_too_many_bytes_wait_however_few_messages():
    client = Client(None, None, None, queue_limit=1000)
    big = text_frame("x" * (1024 * 1024))
    assert all(client.offer(big) for _ in range(3))  # 3 MiB and a little
    assert not client.offer(big)  # a fourth would pass 4 MiB
    assert client.dropped is not None and client.dropped[0] == CLOSE_TOO_SLOW
    assert len(unframe(client.take())) == 3 and client.queued_bytes == 0


def test_sockets_of_disabled_or_changed_accounts_are_closed(app, acme, relay):
    developer, manager, admin = client_of(acme["developer"]), client_of(acme["manager"]), client_of(acme["admin"])
    with app.app_context():
        accounts.update_user(acme["developer"].user, {"active": False})
        accounts.update_user(acme["manager"].user, {"role": "developer"})
        relay.check_accounts([developer, manager, admin])
    assert developer.dropped is not None and developer.dropped[0] == CLOSE_ACCOUNT
    assert manager.dropped is not None and manager.dropped[0] == CLOSE_RIGHTS_CHANGED
    assert admin.dropped is None


def test_a_ticket_works_once_and_not_after_it_expires(app, acme):
    user = acme["developer"].user
    with app.app_context():
        ticket = issue_ticket(user, "session-1", 30, now=1_000_000)
        assert redeem_ticket(ticket, now=1_000_030) == (user, "session-1")
        with pytest.raises(ApiProblem, match="already used"):
            redeem_ticket(ticket, now=1_000_030)
        late = issue_ticket(user, "session-1", 30, now=1_000_000)
        with pytest.raises(ApiProblem, match="expired"):
            redeem_ticket(late, now=1_000_031)
        stored = database.execute_sql("SELECT ticket_hash FROM ws_tickets").fetchall()
        assert stored == [] and ticket not in str(stored)


def test_sockets_of_ended_login_sessions_are_closed(app, acme, relay):
    tokens = app.extensions["weather_metrics"].tokens
    with app.app_context():
        _, claims = tokens.authenticate(acme["developer"].headers["Authorization"].split()[1])
        _, other = tokens.authenticate(acme["manager"].headers["Authorization"].split()[1])
        developer = client_for(acme["developer"].user, 10, claims["sid"])
        manager = client_for(acme["manager"].user, 10, other["sid"])
        tokens.logout(claims["sid"])
        relay.check_accounts([developer, manager])
    assert developer.dropped is not None and developer.dropped[0] == CLOSE_ACCOUNT
    assert "session" in developer.dropped[1]
    assert manager.dropped is None


def test_the_relay_keeps_its_place_after_old_events_are_forgotten(app, acme, relay):
    """Ids never come back: after housekeeping empties the table, new events are still new."""
    org = acme["admin"].user.organization_id
    admin = client_of(acme["admin"])
    with app.app_context():
        relay.hub.add(admin)
        relay.hub.join(admin, "org")
        relay.step()
        with write_transaction():
            for _ in range(3):
                live.record(org, live.METRIC_INGESTED, batch_payload([None, None, "agent_execution", 1]), now=1)
        relay.step()
        assert len(sent(admin)) == 3
        relay.housekeeping(2_000_000_000)  # every event is old: the table is empty
        assert database.execute_sql("SELECT COUNT(*) FROM live_events").fetchone()[0] == 0
        record(org, live.METRIC_INGESTED, batch_payload([None, None, "agent_execution", 7]))
        relay.step()
    (message,) = sent(admin)
    assert message["data"]["count"] == 7


def test_a_webhook_deleted_elsewhere_is_skipped_not_fatal(app, acme):
    from weather_metrics.store.models import Webhook, WebhookDelivery
    from weather_metrics.webhooks import deliveries as webhooks

    org = acme["admin"].user.organization_id
    with app.app_context():
        Webhook.create(
            id="kept",
            organization=org,
            url="https://hooks.example/kept",
            events='["alert.triggered"]',
            secret_encrypted="x",
            secret_hint="xxxx",
            enabled=True,
            consecutive_failures=0,
            created_at=0,
        )
        # "gone" is what a stale cache of another process may still list.
        webhooks.enqueue(["kept", "gone"], "alert.triggered", {"event": "alert.triggered"}, 1)
        assert [d.webhook_id for d in WebhookDelivery.select()] == ["kept"]


def test_the_access_log_redacts_credentials_however_their_names_are_spelled():
    from weather_metrics.runtime.logs import redact_query

    for query in ("%74oken=SECRET", "ticket=SECRET", "a=1&access_token=SECRET", "to%6Ben=SECRET&ticket=SECRET"):
        assert "SECRET" not in redact_query(query), query
    assert redact_query("period=7d&tool=x") == "period=7d&tool=x"


def test_housekeeping_forgets_old_events_tickets_and_dead_processes(app, acme, relay):
    now = 2_000_000_000
    with app.app_context():
        with write_transaction():
            live.record(None, live.PUBLIC_INGESTED, {"count": 1}, now=now - live.KEEP_SECONDS - 1)
            live.record(None, live.PUBLIC_INGESTED, {"count": 1}, now=now)
            execute(
                "INSERT INTO ws_connections VALUES ('dead', 'u', 'gone', ?, ?), ('mine', 'u', ?, ?, ?)",
                (now - 600, now - 600, relay.process, now - 600, now - 600),
            )
        issue_ticket(acme["admin"].user, "session-1", 30, now=now - 60)
        relay.housekeeping(now)
        assert database.execute_sql("SELECT COUNT(*) FROM live_events").fetchone()[0] == 1
        assert database.execute_sql("SELECT id FROM ws_connections").fetchall() == [("mine",)]
        assert database.execute_sql("SELECT COUNT(*) FROM ws_tickets").fetchone()[0] == 0


def test_data_commits_even_when_its_live_notice_cannot_be_stored(app, acme, caplog):
    from tests.support import make_event

    with app.app_context():
        database.execute_sql("DROP TABLE live_events")
    client = app.test_client()
    response = client.post("/v1/events", json={"events": [make_event(), make_event()]})
    assert response.status_code == 200, response.get_json()
    response = client.post(
        "/api/metrics/productivity",
        json={"type": "commits", "value": 2, "timestamp": datetime.now(UTC).isoformat()},
        headers=acme["developer"].headers,
    )
    assert response.status_code == 201, response.get_json()
    with app.app_context():
        assert database.execute_sql("SELECT COUNT(*) FROM events").fetchone()[0] == 2
        assert database.execute_sql("SELECT COUNT(*) FROM productivity_metrics").fetchone()[0] == 1
    assert "sockets miss this commit" in caplog.text


# --- waking on PostgreSQL's notices ----------------------------------------------------------------


def heard_within(wakeup: Wakeup, seconds: float) -> bool:
    """True when `wait` returned before its `seconds` were up: a notice woke it."""
    started = time.monotonic()
    wakeup.wait(seconds)
    return time.monotonic() - started < seconds / 2


def test_a_commit_recording_an_event_wakes_listeners_again_after_the_server_drops_them(make_app, tmp_path):
    app = make_app(database=databases.postgresql_location(tmp_path / "pg.db", fresh=True))
    app.extensions["weather_metrics"].relay.close()
    wakeup = Wakeup()
    try:
        with database.connection_context():
            wakeup.open()
            assert wakeup.listening
            record(None, live.PUBLIC_INGESTED, {"count": 1, "errors": 0, "timestamp": "t"})
            assert heard_within(wakeup, 20), "a commit's notice did not wake the listener"
            assert not heard_within(wakeup, 0.5), "woken without a commit"
            with database.atomic():  # a rolled-back event tells nobody
                live.record(None, live.PUBLIC_INGESTED, {"count": 1, "errors": 0, "timestamp": "t"})
                database.rollback()
            assert not heard_within(wakeup, 1), "woken by a rolled-back event"

            ended = databases.admin_rows(  # what a server restart does to the listening connection
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND query = 'LISTEN weather_metrics_live'"
            )
            assert ended and all(ok for (ok,) in ended)
            heard_within(wakeup, 5)  # the break wakes it: notices may have been lost, read now
            assert not wakeup.listening
            deadline = time.monotonic() + 30
            while not wakeup.listening:  # opened again on a later wait
                assert time.monotonic() < deadline, "the listening connection was not opened again"
                wakeup.wait(0.5, notices=False)
            record(None, live.PUBLIC_INGESTED, {"count": 1, "errors": 0, "timestamp": "t"})
            assert heard_within(wakeup, 20), "no notice after the listening connection was opened again"
    finally:
        wakeup.close()


def test_a_listening_connection_opened_past_descriptor_1024_still_wakes_the_relay(make_app, tmp_path):
    """A busy worker holds many sockets: select() refused descriptors of 1024 and up, ending the relay's thread."""
    app = make_app(database=databases.postgresql_location(tmp_path / "pg.db", fresh=True))
    app.extensions["weather_metrics"].relay.close()
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    wakeup = Wakeup()
    try:
        with database.connection_context():
            wakeup.open()
            assert wakeup.listening and wakeup._conn.fileno() >= 1024
            record(None, live.PUBLIC_INGESTED, {"count": 1, "errors": 0, "timestamp": "t"})
            assert heard_within(wakeup, 20), "a commit's notice did not wake the listener"
    finally:
        wakeup.close()
        for fd in held:
            os.close(fd)


def test_the_relay_listens_only_on_postgresql(relay: Relay) -> None:
    wakeup = Wakeup()
    try:
        wakeup.open()
        assert wakeup.listening is is_postgresql()
    finally:
        wakeup.close()


def test_an_event_that_commits_after_a_later_one_is_still_sent(make_app, tmp_path):
    """Two instances' writers: the one that took the lower id may commit second; the relay still reads it."""
    url = databases.postgresql_location(tmp_path / "pg.db", fresh=True)
    app = make_app(database=url, ws_public_interval_seconds=0.1)
    app.extensions["weather_metrics"].relay.close()
    relay = Relay(Hub(), app.extensions["weather_metrics"].settings, no_dashboards)
    listener = client_of(None)
    relay.hub.add(listener)
    relay.hub.join(listener, "public")
    other = psycopg2.connect(url)  # another instance's writer, in the middle of its transaction
    try:
        with database.connection_context():
            relay.step()
            with other.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO live_events (organization_id, type, team_id, payload, created_at)"
                    " VALUES (NULL, %s, NULL, %s, 0)",
                    (live.PUBLIC_INGESTED, json.dumps({"count": 5, "errors": 0, "timestamp": "t"})),
                )
            record(None, live.PUBLIC_INGESTED, {"count": 2, "errors": 0, "timestamp": "t"})  # a later id, first
            relay.step()
            other.commit()
            time.sleep(0.2)  # the public room's interval
            relay.step()
    finally:
        other.close()
    assert [m["data"]["count"] for m in sent(listener)] == [2, 5]
