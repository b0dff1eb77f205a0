"""WebSockets end to end: real clients against gunicorn with two worker processes.

Every socket here is a real WebSocket over TCP (the websockets library's client, or a
raw socket where the test needs a client that misbehaves); data goes in over real HTTP.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests import databases
from tests.support import (
    Member,
    Server,
    http,
    make_event,
    masked_frame,
    masked_text,
    raw_upgrade,
    seed_org,
    seeded_database,
)

SETTINGS = {
    "workers": 2,
    "threads": 32,
    "ws_allowed_origins": "https://dash.example, https://other.example:8443",
    "ws_ping_interval_seconds": 1,
    "ws_send_timeout_seconds": 2,
    "ws_dashboard_interval_seconds": 1,
    "ws_public_interval_seconds": 0.2,
    "alert_evaluation_seconds": 1,
    "metrics_ingest_rate_limit": "100000 per minute",
    "api_rate_limit": "100000 per minute",
}


def now_stamp(seconds_ago: float = 60) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds_ago)).isoformat().replace("+00:00", "Z")


def execution(**overrides: Any) -> dict[str, Any]:
    return {
        "agent_name": "code-reviewer",
        "command": "review",
        "execution_time_ms": 1200,
        "success": True,
        "timestamp": now_stamp(),
        **overrides,
    }


def seed(app: Any) -> dict[str, Any]:
    from weather_metrics.accounts import organizations as accounts

    acme, globex = seed_org(app, "Acme"), seed_org(app, "Globex")
    passwords = app.extensions["weather_metrics"].passwords
    with app.app_context():
        outsider, _ = accounts.create_user(
            acme["admin"].user.organization_id, "outsider@acme.test", "Out", "developer", passwords, password="p" * 16
        )
        team = accounts.create_team(acme["admin"].user.organization_id, "Platform", "")
        accounts.add_member(team, acme["manager"].user, "lead")
        accounts.add_member(team, acme["developer"].user, "member")
        other = accounts.create_team(acme["admin"].user.organization_id, "Data", "")
        accounts.add_member(other, outsider, "member")
        globex_team = accounts.create_team(globex["admin"].user.organization_id, "G", "")
    return {
        "acme": acme,
        "globex": globex,
        "team": team.id,
        "other_team": other.id,
        "globex_team": globex_team.id,
        "outsider": outsider.id,
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, Any], Path]]:
    path = tmp_path_factory.mktemp("ws") / "metrics.db"
    seeded = seeded_database(path, seed)
    with Server(path, **SETTINGS) as server:
        yield server, seeded, path


@pytest.fixture
def server(world) -> Server:
    return world[0]  # type: ignore[no-any-return]


@pytest.fixture
def acme(world) -> dict[str, Member]:
    return world[1]["acme"]  # type: ignore[no-any-return]


def token_of(member: Member) -> str:
    return member.headers["Authorization"].split(" ", 1)[1]


class Socket:
    """A real WebSocket client that reads JSON messages (and answers pings by itself)."""

    def __init__(self, server: Server, query: str = "", headers: dict[str, str] | None = None) -> None:
        url = server.url.replace("http://", "ws://") + "/ws" + query
        # max_queue=None: the client keeps reading while a test is busy, as an attentive client does.
        self._stack = ExitStack()
        self.ws = self._stack.enter_context(
            connect(url, additional_headers=headers, proxy=None, max_queue=None, open_timeout=10)
        )
        self.welcome = self.next()
        assert self.welcome["type"] == "welcome", self.welcome

    def next(self, timeout: float = 10) -> dict[str, Any]:
        try:
            raw = self.ws.recv(timeout)
        except TimeoutError:
            raise AssertionError(f"no message within {timeout}s") from None
        return json.loads(raw)  # type: ignore[no-any-return]

    def send(self, message: Any) -> None:
        self.ws.send(json.dumps(message) if not isinstance(message, str) else message)

    def subscribe(self, *rooms: str) -> tuple[list[str], list[dict[str, Any]]]:
        """Rooms granted, and the errors of the refused ones."""
        self.send({"type": "subscribe", "rooms": list(rooms)})
        errors = []
        while True:
            message = self.next()
            if message["type"] == "subscribed":
                return message["rooms"], errors
            assert message["type"] == "error", message
            errors.append(message["error"])

    def events(self, kind: str, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        """The next `count` messages of type `kind` (others are skipped)."""
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(found) < count:
            left = deadline - time.monotonic()
            assert left > 0, f"{len(found)} of {count} {kind} messages within {timeout}s: {found}"
            message = self.next(left)
            if message["type"] == kind:
                found.append(message)
        return found

    def quiet(self, seconds: float) -> list[dict[str, Any]]:
        """Everything that arrives within `seconds`."""
        got = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                got.append(json.loads(self.ws.recv(left)))
            except TimeoutError:
                break
        return got

    def close(self) -> None:
        self._stack.close()

    def closed_with(self, timeout: float = 10) -> int | None:
        """Read until the server closes the connection; its close code."""
        deadline = time.monotonic() + timeout
        with pytest.raises(ConnectionClosed):
            while time.monotonic() < deadline:
                try:
                    self.ws.recv(max(0.01, deadline - time.monotonic()))
                except TimeoutError:
                    break
        return self.ws.close_code


@pytest.fixture
def sockets() -> Iterator[list[Socket]]:
    """Sockets a test opens; closed after it (the per-user limit counts open ones)."""
    opened: list[Socket] = []
    yield opened
    for sock in opened:
        sock.close()
    time.sleep(0.2)  # let the server release their rows


def open_socket(sockets: list[Socket], server: Server, query: str = "", **headers: str) -> Socket:
    sock = Socket(server, query, headers or None)
    sockets.append(sock)
    return sock


def handshake(server: Server, query: str = "", **headers: str | None) -> tuple[int, dict[str, Any] | None]:
    """A raw upgrade request: the status and, when refused, the JSON error body."""
    conn = HTTPConnection("127.0.0.1", server.port, timeout=10)
    sent = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
        **headers,
    }
    conn.request("GET", "/ws" + query, headers={k: v for k, v in sent.items() if v is not None})
    response = conn.getresponse()
    body = None if response.status == 101 else json.loads(response.read())
    conn.close()
    return response.status, body


def post_agents(server: Server, member: Member, items: list[dict[str, Any]]) -> tuple[int, dict[str, Any], float]:
    started = time.perf_counter()
    status, _, body = http("POST", server.url + "/api/metrics/agents", items, headers=member.headers, timeout=30)
    return status, body, time.perf_counter() - started


def worker_of(database: Path) -> dict[str, str]:
    """Each open connection's worker process, from the server's own bookkeeping."""
    return dict(databases.rows(database, "SELECT id, process FROM ws_connections"))


# --- fan-out across worker processes -------------------------------------------------------------


def test_sockets_on_different_workers_both_receive_every_batch(world, acme, sockets):
    server, _seeded, database = world
    admin = acme["admin"]
    # Connections opened together spread over the workers: open some until both hold one.
    held: dict[str, Socket] = {}
    for _ in range(10):
        batch: list[Socket] = []

        def open_one(into: list[Socket] = batch) -> None:
            into.append(Socket(server, f"?token={token_of(admin)}"))

        threads = [threading.Thread(target=open_one) for _ in range(4 - len(held))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        by_id = worker_of(database)
        for sock in batch:
            process = by_id[sock.welcome["data"]["connection_id"]]
            if process not in held:
                held[process] = sock
                sockets.append(sock)
            else:
                sock.close()
        if len(held) == 2:
            break
        time.sleep(0.2)
    assert len(held) == 2, "every connection landed on one worker"
    held_sockets = list(held.values())
    for sock in held_sockets:
        assert sock.subscribe("org") == (["org"], [])

    # POSTs land on either worker (the access log names the pid that answered), and that
    # worker's writer commits them; both sockets hear of every batch.
    pids = {process.split("-")[0] for process in held}
    logged = len(server.log.read_bytes())
    batch_ids: list[str] = []
    for round_ in range(10):

        def post_one(n: int) -> None:
            status, body, _ = post_agents(server, acme["developer"], [execution(command=f"c{n}")] * 2)
            assert status == 201, body
            batch_ids.append(body["batch_id"])

        posters = [threading.Thread(target=post_one, args=(round_ * 4 + i,)) for i in range(4)]
        for poster in posters:
            poster.start()
        for poster in posters:
            poster.join()
        time.sleep(0.1)
        log = server.log.read_bytes()[logged:].decode()
        answered_by = set(re.findall(r'"POST /api/metrics/agents HTTP/1.1" 201 \d+ "-" "[^"]*" <(\d+)>', log))
        if answered_by == pids:
            break
    assert answered_by == pids, f"POSTs were answered by {answered_by}, sockets held by {pids}"
    for sock in held_sockets:
        got = [m["data"] for m in sock.events("metric_ingested", len(batch_ids))]
        assert sorted(d["batch_id"] for d in got) == sorted(batch_ids)
        assert {d["count"] for d in got} == {2}
        assert {d["user_id"] for d in got} == {acme["developer"].user.id}
        assert {d["metric_type"] for d in got} == {"agent_execution"}


def test_an_event_is_sent_only_after_its_rows_are_committed(world, acme, sockets):
    server, _seeded, database = world
    sock = open_socket(sockets, server, f"?token={token_of(acme['admin'])}")
    sock.subscribe("org")
    status, body, _ = post_agents(server, acme["developer"], [execution()] * 7)
    assert status == 201
    (event,) = sock.events("metric_ingested", 1)
    stored = databases.rows(database, "SELECT COUNT(*) FROM agent_executions WHERE batch_id = ?", (body["batch_id"],))
    assert stored[0][0] == event["data"]["count"] == 7


def test_the_public_room_streams_v1_counts_without_a_token(server, sockets):
    sock = open_socket(sockets, server)
    assert sock.welcome["data"]["user_id"] is None
    assert sock.subscribe("public") == (["public"], [])
    events = [make_event(), make_event(status="error", error_type="NetworkError"), make_event()]
    assert http("POST", server.url + "/v1/events", {"events": events})[0] == 200
    counted = errors = 0
    deadline = time.monotonic() + 10
    while counted < 3 and time.monotonic() < deadline:
        data = sock.events("metric_ingested", 1)[0]["data"]
        assert data["source"] == "v1"
        counted += data["count"]
        errors += data["errors"]
    assert (counted, errors) == (3, 1)


# --- rooms and rights ----------------------------------------------------------------------------


def test_rooms_outside_the_callers_rights_are_refused_with_a_reason(world, acme, sockets):
    server, seeded, _ = world
    developer = open_socket(sockets, server, f"?token={token_of(acme['developer'])}")
    own = f"user:{acme['developer'].user.id}"
    granted, errors = developer.subscribe(
        "org", "alerts", f"team:{seeded['other_team']}", own, f"user:{seeded['outsider']}", "nonsense"
    )
    assert granted == [own]
    assert [(e["room"], e["code"]) for e in errors] == [
        ("org", "FORBIDDEN"),
        ("alerts", "FORBIDDEN"),
        (f"team:{seeded['other_team']}", "FORBIDDEN"),
        (f"user:{seeded['outsider']}", "FORBIDDEN"),
        ("nonsense", "BAD_ROOM"),
    ]
    assert all(e["message"] for e in errors)

    manager = open_socket(sockets, server, f"?token={token_of(acme['manager'])}")
    granted, errors = manager.subscribe(
        f"team:{seeded['team']}", f"team:{seeded['other_team']}", f"team:{seeded['globex_team']}", "alerts"
    )
    assert granted == [f"team:{seeded['team']}", "alerts"]
    assert [(e["room"], e["code"]) for e in errors] == [
        (f"team:{seeded['other_team']}", "FORBIDDEN"),
        (f"team:{seeded['globex_team']}", "NOT_FOUND"),  # another organization's team: not found
    ]

    anonymous = open_socket(sockets, server)
    granted, errors = anonymous.subscribe("org", "public")
    assert granted == ["public"] and errors[0]["code"] == "UNAUTHORIZED"


def test_team_and_user_rooms_show_only_their_rows(world, acme, sockets):
    server, seeded, _ = world
    manager = open_socket(sockets, server, f"?token={token_of(acme['manager'])}")
    manager.subscribe(f"team:{seeded['team']}")
    developer = open_socket(sockets, server, f"?token={token_of(acme['developer'])}")
    developer.subscribe(f"user:{acme['developer'].user.id}")

    # The admin posts for the team's developer and for a user outside the team, in one batch.
    items = [execution(user_id=acme["developer"].user.id)] * 2 + [execution(user_id=seeded["outsider"])] * 3
    status, body, _ = post_agents(server, acme["admin"], items)
    assert status == 201, body
    team_event = manager.events("metric_ingested", 1)[0]
    assert team_event["room"] == f"team:{seeded['team']}"
    assert team_event["data"]["count"] == 2 and team_event["data"]["user_ids"] == [acme["developer"].user.id]
    assert team_event["data"]["team_id"] == seeded["team"]
    user_event = developer.events("metric_ingested", 1)[0]
    assert user_event["data"]["count"] == 2 and user_event["data"]["batch_id"] == body["batch_id"]

    # A batch of the outsider alone reaches neither room.
    assert post_agents(server, acme["admin"], [execution(user_id=seeded["outsider"])])[0] == 201
    assert [m for m in manager.quiet(1.0) + developer.quiet(0.2) if m["type"] == "metric_ingested"] == []


def test_the_contracts_subscribe_payload_works_and_errors_carry_data(world, acme, sockets):
    """socket.emit('subscribe', {rooms, user_id}) of the contract, as a raw message: data.rooms, data.user_id."""
    server, seeded, _ = world
    manager = open_socket(sockets, server, f"?token={token_of(acme['manager'])}")
    user_id = acme["manager"].user.id
    manager.send({"type": "subscribe", "data": {"rooms": [f"team:{seeded['team']}", "org"], "user_id": user_id}})
    refused = manager.next()  # the org room is for admins
    assert refused["type"] == "error" and refused["data"]["code"] == "FORBIDDEN" and refused["data"]["message"]
    assert refused["data"] == refused["error"]
    assert manager.next() == {"type": "subscribed", "rooms": [f"team:{seeded['team']}"]}
    assert post_agents(server, acme["admin"], [execution(user_id=acme["developer"].user.id)])[0] == 201
    assert manager.events("metric_ingested", 1)[0]["room"] == f"team:{seeded['team']}"
    manager.send({"type": "unsubscribe", "data": {"rooms": [f"team:{seeded['team']}"], "user_id": user_id}})
    assert manager.next() == {"type": "unsubscribed", "rooms": [f"team:{seeded['team']}"]}
    manager.send({"type": "subscribe", "data": {"user_id": user_id}})
    bad = manager.next()
    assert bad["data"]["code"] == "BAD_MESSAGE" and "data.rooms" in bad["data"]["message"]


def test_unsubscribe_stops_events_and_bad_messages_get_errors(world, acme, sockets):
    server, _, _ = world
    sock = open_socket(sockets, server, f"?token={token_of(acme['admin'])}")
    for bad, code in [
        ("not json", "BAD_MESSAGE"),
        (json.dumps({"type": "dance"}), "BAD_MESSAGE"),
        (json.dumps({"type": "subscribe", "rooms": "org"}), "BAD_MESSAGE"),
        (json.dumps({"type": "subscribe", "rooms": []}), "BAD_MESSAGE"),
        (json.dumps([1, 2]), "BAD_MESSAGE"),
    ]:
        sock.send(bad)
        message = sock.next()
        assert message["type"] == "error" and message["error"]["code"] == code, (bad, message)
    sock.send({"type": "ping"})
    assert sock.next() == {"type": "pong"}
    sock.subscribe("org")
    sock.send({"type": "unsubscribe", "rooms": ["org"]})
    assert sock.next() == {"type": "unsubscribed", "rooms": ["org"]}
    assert post_agents(server, acme["developer"], [execution()])[0] == 201
    assert [m for m in sock.quiet(1.0) if m["type"] == "metric_ingested"] == []


def test_an_oversized_message_closes_the_socket(server, sockets):
    sock = open_socket(sockets, server)
    sock.send("x" * (65 * 1024))
    assert sock.closed_with() == 1009


# --- admission: origin, credentials, limits ------------------------------------------------------


def test_origins_outside_the_allow_list_are_refused_before_the_upgrade(server):
    assert handshake(server)[0] == 101  # no Origin: not a browser
    assert handshake(server, Origin="https://dash.example")[0] == 101
    assert handshake(server, Origin="https://other.example:8443")[0] == 101
    assert handshake(server, Origin=server.url)[0] == 101  # the service's own pages
    for origin in ("https://evil.example", "http://dash.example", "https://dash.example.evil.test", "null"):
        status, body = handshake(server, Origin=origin)
        assert status == 403 and body is not None, origin
        assert body["error"]["code"] == "FORBIDDEN" and "ws_allowed_origins" in body["error"]["message"]


def test_a_ticket_does_not_outlive_the_login_session_it_was_asked_in(world, acme):
    server, _, _ = world
    member = acme["developer"]
    status, _, tokens = http(
        "POST", server.url + "/api/auth/login", {"email": member.user.email, "password": member.password}
    )
    assert status == 200, tokens
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    status, _, issued = http("POST", server.url + "/api/ws/ticket", None, headers=headers)
    assert status == 201, issued
    assert http("POST", server.url + "/api/auth/logout", {}, headers=headers)[0] in (200, 204)
    status, body = handshake(server, f"?ticket={issued['ticket']}")
    assert status == 401 and body is not None and "session" in body["error"]["message"], (status, body)


def test_a_malformed_upgrade_is_a_400_and_keeps_the_ticket(world, acme, sockets):
    server, _, _ = world
    status, _, issued = http("POST", server.url + "/api/ws/ticket", None, headers=acme["developer"].headers)
    assert status == 201
    for headers in ({"Sec-WebSocket-Key": None}, {"Sec-WebSocket-Key": "short"}, {"Sec-WebSocket-Version": "8"}):
        status, body = handshake(server, f"?ticket={issued['ticket']}", **headers)
        assert status == 400 and body is not None and body["error"]["code"] == "VALIDATION_ERROR", (headers, body)
    assert open_socket(sockets, server, f"?ticket={issued['ticket']}").welcome["data"]["role"] == "developer"


def test_a_client_that_floods_messages_is_closed(server, sockets):
    sock = open_socket(sockets, server)
    with pytest.raises(ConnectionClosed):  # the server closes while the flood goes on
        for _ in range(10_000):
            sock.send({"type": "ping"})
            time.sleep(0.001)
    assert sock.closed_with() == 1008
    assert sock.ws.close_reason is not None and "Too many messages" in sock.ws.close_reason


def test_brackets_nested_thousands_deep_are_a_bad_message_not_a_crash(server, sockets):
    sock = open_socket(sockets, server)
    sock.send("[" * 5000)
    message = sock.next()
    assert message["type"] == "error" and message["error"]["code"] == "BAD_MESSAGE"
    sock.send({"type": "ping"})
    assert sock.next() == {"type": "pong"}


CUT_OFF = (b"Too much input", b"Too many messages", b"dropped: too slow")


@databases.sqlite_only  # the socket's input budget; no statement of the database in it
def test_a_client_that_sends_too_many_bytes_is_cut_off_while_it_does_not_read(world):
    """Big messages, then pings: the server stops reading at its input budget, whatever the frames.

    A second server on the same database, whose pings are too rare to end the silent client first:
    on a loaded machine, parsing tens of thousands of empty pings can take longer than two pings.
    """
    with Server(world[2], **{**SETTINGS, "ws_ping_interval_seconds": 600}) as server:
        for frame in (masked_frame(b"x" * 65000), masked_frame(b"", opcode=0x9)):
            logged = len(server.log.read_bytes())
            raw = raw_upgrade(server.port, receive_buffer=4096)
            raw.settimeout(30)  # generous: on a loaded machine the server may read slowly before it cuts in
            sent = 0
            try:
                while sent < 64 * 1024 * 1024:  # far more than the budget; the server cuts in well before
                    raw.sendall(frame * max(1, 65536 // len(frame)))
                    sent += 65536
            except OSError:
                pass  # reset by the server
            finally:
                raw.close()
            assert sent < 8 * 1024 * 1024, f"{sent:,} bytes accepted"
            deadline = time.monotonic() + 30
            # The input budget, or, when a slow server answers pings slower than the budget fills,
            # the pongs this client never reads: either way the server ends it, not the client.
            while not any(reason in server.log.read_bytes()[logged:] for reason in CUT_OFF):
                assert time.monotonic() < deadline, server.log.read_bytes()[logged:][-2000:]
                time.sleep(0.1)


def test_requests_the_protocol_refuses_are_400s(server):
    assert handshake(server)[0] == 101
    conn = HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request(
        "HEAD",
        "/ws",
        headers={
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
            "Sec-WebSocket-Version": "13",
        },
    )
    assert conn.getresponse().status == 400
    conn.close()
    for host in (None, "xn--a"):
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        head = "GET /ws HTTP/1.1\r\n" + (f"Host: {host}\r\n" if host else "")
        key = base64.b64encode(os.urandom(16)).decode()
        head += "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        head += f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        raw.sendall(head.encode())
        answer = raw.recv(4096)
        raw.close()
        assert answer.startswith(b"HTTP/1.1 400"), (host, answer[:200])


def test_credentials_are_checked_and_a_ticket_works_once(world, acme, sockets):
    server, _, _ = world
    status, body = handshake(server, "?token=not-a-token")
    assert status == 401 and body is not None and body["error"]["code"] == "UNAUTHORIZED"
    status, body = handshake(server, Authorization="Bearer not-a-token")
    assert status == 401

    by_header = open_socket(sockets, server, Authorization=acme["manager"].headers["Authorization"])
    assert by_header.welcome["data"]["user_id"] == acme["manager"].user.id
    assert by_header.welcome["data"]["role"] == "manager"

    status, _, issued = http("POST", server.url + "/api/ws/ticket", None, headers=acme["developer"].headers)
    assert status == 201 and issued["expires_in"] == 30 and issued["url"] == f"/ws?ticket={issued['ticket']}"
    by_ticket = open_socket(sockets, server, f"?ticket={issued['ticket']}")
    assert by_ticket.welcome["data"]["user_id"] == acme["developer"].user.id
    status, body = handshake(server, f"?ticket={issued['ticket']}")
    assert status == 401 and body is not None and "used" in body["error"]["message"]
    assert http("POST", server.url + "/api/ws/ticket", None)[0] == 401


def test_an_api_key_of_either_scope_opens_nothing_of_the_organization(world, acme, sockets):
    """A key is no /ws credential: as a token it is refused, as X-API-Key the socket is an anonymous one."""
    server, _, _ = world
    for scope in ("read", "ingest"):
        status, _, key = http("POST", server.url + "/api/keys", {"name": scope, "scope": scope}, acme["admin"].headers)
        assert status == 201, key
        for query, headers in ((f"?token={key['secret']}", {}), ("", {"Authorization": f"Bearer {key['secret']}"})):
            status, body = handshake(server, query, **headers)
            assert status == 401 and body is not None and body["error"]["code"] == "UNAUTHORIZED", (scope, body)
        by_header = open_socket(sockets, server, **{"X-API-Key": key["secret"]})
        assert by_header.welcome["data"]["user_id"] is None, by_header.welcome
        granted, errors = by_header.subscribe("org", "alerts", "public")
        assert granted == ["public"] and [e["code"] for e in errors] == ["UNAUTHORIZED", "UNAUTHORIZED"]


def test_at_most_five_sockets_per_user(world, acme, sockets):
    server, _, _ = world
    token = token_of(acme["developer"])
    for _ in range(5):
        open_socket(sockets, server, f"?token={token}")
    status, body = handshake(server, f"?token={token}")
    assert status == 429 and body is not None and "5" in body["error"]["message"]
    assert handshake(server, f"?token={token_of(acme['manager'])}")[0] == 101  # others are not affected
    sockets.pop().close()
    deadline = time.monotonic() + 5
    while handshake(server, f"?token={token}")[0] != 101:
        assert time.monotonic() < deadline, "a closed socket's place was not given back"
        time.sleep(0.1)


def test_the_service_wide_total_counts_sockets_of_every_worker(tmp_path):
    with Server(tmp_path / "metrics.db", workers=2, ws_max_connections=3) as server:
        opened = [Socket(server) for _ in range(3)]  # one address: 3 of its 5 allowed
        try:
            status, body = handshake(server)
            assert status == 503 and body is not None and "as many WebSocket connections" in body["error"]["message"]
            opened.pop().close()
            deadline = time.monotonic() + 5
            while handshake(server)[0] != 101:
                assert time.monotonic() < deadline, "a closed socket's place was not given back"
                time.sleep(0.1)
        finally:
            for sock in opened:
                sock.close()


def test_tokens_never_reach_the_access_log(world, acme, sockets):
    server, _, database = world
    token = token_of(acme["admin"])
    open_socket(sockets, server, f"?token={token}")
    assert handshake(server, f"?token={token}&x=1", Origin="https://evil.example")[0] == 403
    http("GET", server.url + f"/ws?access_token={token}")  # not an upgrade: 400, still logged
    assert http("GET", server.url + "/api/users", headers=acme["admin"].headers)[0] == 200
    time.sleep(0.3)
    log = database.with_suffix(".log").read_text()
    assert token not in log
    assert "token=[redacted]" in log and "access_token=[redacted]" in log


# --- liveness and slow clients -------------------------------------------------------------------


def closed_by_server(raw: socket.socket, within: float) -> bool:
    """True when the server ends the connection within `within` seconds (reading what it sends)."""
    raw.settimeout(0.2)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if raw.recv(65536) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:
            return True
    return False


@databases.sqlite_only  # pings on an open socket; no statement of the database in it
def test_a_client_that_does_not_answer_pings_is_closed_and_one_that_does_stays(server, sockets):
    alive = open_socket(sockets, server)  # simple-websocket's client answers pings by itself
    silent = raw_upgrade(server.port)
    try:
        assert closed_by_server(silent, within=6)  # pings every second; the first unanswered one ends it
    finally:
        silent.close()
    alive.send({"type": "ping"})
    assert alive.next() == {"type": "pong"}


def test_a_slow_client_is_dropped_and_does_not_slow_ingestion(world, acme, sockets):
    """A second server on the same database, with pings too rare to end the silent client first."""
    _, _, database = world
    settings = {**SETTINGS, "ws_ping_interval_seconds": 600, "ws_send_buffer_bytes": 4096, "ws_send_timeout_seconds": 4}
    with Server(database, **settings) as server:  # it logs to the same file: read only what follows
        logged = len(server.log.read_bytes())
        token = token_of(acme["admin"])
        reader = open_socket(sockets, server, f"?token={token}")
        reader.subscribe("org")
        slow = raw_upgrade(server.port, f"?token={token}", receive_buffer=4096)
        slow.sendall(masked_text(json.dumps({"type": "subscribe", "rooms": ["org"]})))
        answered = b""
        while b'"subscribed"' not in answered:  # after this, it never reads again
            answered += slow.recv(1)
        try:
            latencies: list[float] = []

            def post_many() -> None:
                for _ in range(100):  # ~300 bytes of metric_ingested each: more than the socket buffers hold
                    status, _, seconds = post_agents(server, acme["developer"], [execution()] * 20)
                    assert status == 201
                    latencies.append(seconds)

            posters = [threading.Thread(target=post_many) for _ in range(4)]
            for poster in posters:
                poster.start()
            for poster in posters:
                poster.join()
            assert len(latencies) == 400
            # The reader hears of every batch while the slow client's messages pile up.
            assert len(reader.events("metric_ingested", len(latencies), timeout=30)) == len(latencies)
            # A client that held up the writers would show here: each POST waits for its commit,
            # which would wait for the slow client's 4-second send timeout.
            assert max(latencies) < 3, f"median {statistics.median(latencies):.3f}s, max {max(latencies):.3f}s"
            # Without reading a byte (reading would make it fast), wait for the server to drop it.
            deadline = time.monotonic() + 15
            while b"too slow" not in server.log.read_bytes()[logged:].lower():
                assert time.monotonic() < deadline, "the slow client was never dropped"
                time.sleep(0.2)
            assert closed_by_server(slow, within=5)  # what was buffered, then the end
        finally:
            slow.close()
        deadline = time.monotonic() + 5
        while len(worker_of(database)) != 1:  # only the reader remains
            assert time.monotonic() < deadline, worker_of(database)
            time.sleep(0.1)


# --- dashboards ----------------------------------------------------------------------------------


def test_dashboard_updates_carry_widget_data_at_most_once_per_interval(world, acme, sockets):
    server, _, _ = world
    developer = acme["developer"]
    layout = [
        {"id": "calls", "type": "number", "metric": "agents.calls", "position": {"x": 0, "y": 0, "w": 2, "h": 2}},
    ]
    status, _, dashboard = http(
        "POST",
        server.url + "/api/dashboards",
        {"name": "Live", "scope": "user", "layout": layout},
        headers=developer.headers,
    )
    assert status == 201, dashboard
    sock = open_socket(sockets, server, f"?token={token_of(developer)}")
    room = f"dashboard:{dashboard['id']}"
    assert sock.subscribe(room) == ([room], [])
    first = sock.events("dashboard_update", 1)[0]  # the current data, right away
    assert first["room"] == room
    assert first["data"]["dashboard_id"] == dashboard["id"] and first["data"]["widget_id"] == "calls"
    assert "data" in first["data"]["data"], first
    before = first["data"]["data"]["data"]["value"]

    started = time.monotonic()
    for _ in range(10):
        assert post_agents(server, developer, [execution()])[0] == 201
    updates = [m for m in sock.quiet(2.5) if m["type"] == "dashboard_update"]
    elapsed = time.monotonic() - started
    assert updates, "no dashboard_update after new data"
    assert len(updates) <= elapsed / SETTINGS["ws_dashboard_interval_seconds"] + 1, len(updates)
    assert updates[-1]["data"]["data"]["data"]["value"] == before + 10

    # Somebody else's personal dashboard does not exist for this caller.
    other = open_socket(sockets, server, f"?token={token_of(acme['manager'])}")
    granted, errors = other.subscribe(room)
    assert granted == [] and errors[0]["code"] == "NOT_FOUND"


# --- alerts ----------------------------------------------------------------------------------------


def test_a_firing_rule_reaches_the_alerts_room_of_admins_and_of_the_teams_managers(world, acme, sockets):
    server, seeded, _ = world
    admin = open_socket(sockets, server, f"?token={token_of(acme['admin'])}")
    manager = open_socket(sockets, server, f"?token={token_of(acme['manager'])}")
    for sock in (admin, manager):
        assert sock.subscribe("alerts") == (["alerts"], [])
    agent = f"deployer-{time.monotonic_ns()}"  # only this test's executions count
    rules = {}
    for name, scope in (("Org", {"type": "agent", "name": agent}), ("Team", {"type": "team", "id": seeded["team"]})):
        body = {
            "name": f"{name} failures",
            "metric": "call_volume",
            "scope": scope,
            "comparison": "gte",
            "threshold": 3,
            "window_minutes": 5,
            "severity": "critical",
            "cooldown_minutes": 60,
        }
        status, _, rule = http("POST", server.url + "/api/alerts/rules", body, headers=acme["admin"].headers)
        assert status == 201, rule
        rules[name] = rule
    status, _, _ = post_agents(server, acme["developer"], [execution(agent_name=agent, timestamp=now_stamp(5))] * 3)
    assert status == 201

    fired = {m["data"]["rule_name"]: m["data"] for m in admin.events("alert_triggered", 2, timeout=15)}
    assert set(fired) == {"Org failures", "Team failures"}
    assert fired["Org failures"]["metric_value"] == 3 and fired["Org failures"]["threshold"] == 3
    assert fired["Org failures"]["severity"] == "critical"
    assert fired["Org failures"]["affected_users"] == [acme["developer"].user.id]
    # The manager hears only of the rule of their team.
    (heard,) = manager.events("alert_triggered", 1, timeout=15)
    assert heard["data"]["rule_id"] == rules["Team"]["id"]
    assert [m for m in manager.quiet(1.5) if m["type"] == "alert_triggered"] == []
    # Still true a second later: no second message within the cooldown.
    assert [m for m in admin.quiet(1.5) if m["type"] == "alert_triggered"] == []
    status, _, history = http("GET", server.url + "/api/alerts?state=firing", headers=acme["admin"].headers)
    assert status == 200
    firing = {a["rule_id"] for a in history["alerts"]}
    assert {rules["Org"]["id"], rules["Team"]["id"]} <= firing
    for rule in rules.values():  # leave no rule firing for the tests that follow
        assert http("DELETE", server.url + f"/api/alerts/rules/{rule['id']}", headers=acme["admin"].headers)[0] == 204


def test_plain_http_to_ws_gets_an_error_body(server):
    status, _, body = http("GET", server.url + "/ws")
    assert status == 400 and body["error"]["code"] == "VALIDATION_ERROR" and "Upgrade" in body["error"]["message"]


@databases.sqlite_only  # close codes at shutdown; test_server.py stops the writer on PostgreSQL
def test_sigterm_with_open_sockets_closes_them_and_stops_promptly(tmp_path):
    path = tmp_path / "metrics.db"
    with Server(path, workers=2) as server:
        socks = [Socket(server) for _ in range(4)]
        silent = raw_upgrade(server.port)  # never answers the close: the server must not wait for it
        started = time.monotonic()
        assert server.stop() == 0
        assert time.monotonic() - started < 10
        silent.close()
        for sock in socks:
            assert sock.closed_with() == 1001


@databases.sqlite_only  # the request threads' budget for sockets; no statement of the database in it
def test_sockets_do_not_take_the_threads_http_needs(tmp_path):
    """threads=12 keeps eight for HTTP: of many upgrades at once, four become sockets and HTTP still answers."""
    database = tmp_path / "metrics.db"
    token = seeded_database(database, seed_org)["admin"].headers["Authorization"].split()[1]
    with Server(database, threads=12, ws_max_connections_per_user=50) as server:
        opened: list[Socket] = []
        refused: list[int] = []

        def attempt() -> None:
            try:
                opened.append(Socket(server, f"?token={token}"))  # signed in: anonymous sockets get only half
            except InvalidStatus as exc:
                refused.append(exc.response.status_code)

        attempts = [threading.Thread(target=attempt) for _ in range(16)]
        try:
            for thread in attempts:
                thread.start()
            for thread in attempts:
                thread.join(30)
            assert len(opened) == 4 and refused == [503] * 12, (len(opened), refused)
            status, body = handshake(server, f"?token={token}")
            assert status == 503 and body is not None and "thread" in body["error"]["message"]
            assert http("GET", server.url + "/v1/health", timeout=5)[0] == 200
        finally:
            for sock in opened:
                sock.close()
