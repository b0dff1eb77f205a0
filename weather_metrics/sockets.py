"""/ws: the WebSocket surface (flask-sock), and the single-use tickets that open it.

Before the upgrade, `admit` checks the Origin, the credentials (an access token in the
`token` query parameter or the Authorization header, or a ticket from POST
/api/ws/ticket) and the connection limits; a refusal is an ordinary HTTP answer in the
/api error format. After it, `serve` runs the protocol of the README's "Real-time
updates": JSON messages subscribe and unsubscribe rooms; events arrive from the relay.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, current_app, g, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed, Server
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from weather_metrics.accounts import NotFound, hash_api_key
from weather_metrics.api import ApiProblem, bearer_token, error_response
from weather_metrics.dashboards import find_dashboard
from weather_metrics.db import database, write_transaction
from weather_metrics.models import User, WsTicket
from weather_metrics.relay import STALE_SECONDS, Client, Relay
from weather_metrics.tokens import TokenError
from weather_metrics.windows import OutOfScope, UnknownTarget, narrow, scope_for

log = logging.getLogger(__name__)
bp = Blueprint("ws", __name__)
sock = Sock()

MAX_MESSAGE_BYTES = 64 * 1024
MAX_ROOMS = 50
MAX_ROOM_LENGTH = 200
# Server threads a process keeps for HTTP, however many sockets are open: each socket holds one.
RESERVED_THREADS = 8
# Messages a client may send: a burst, then this many a second (a flood is closed, not queued).
MESSAGE_BURST = 30
MESSAGES_PER_SECOND = 10
# Bytes a client may send, frames of every kind: a burst, then this many a second.
INPUT_BURST_BYTES = 256 * 1024
INPUT_BYTES_PER_SECOND = 8 * 1024
CLOSE_POLICY = 1008
CLOSE_INTERNAL = 1011


# -- tickets -------------------------------------------------------------------------------------


def issue_ticket(user: User, session_id: str, seconds: int, now: float | None = None) -> str:
    """A random single-use ticket for `user` in login session `session_id`, valid `seconds`.

    Like an API key it is 256 random bits, stored only as its SHA-256.
    """
    ticket = secrets.token_urlsafe(32)
    expires = int(now if now is not None else time.time()) + seconds
    with write_transaction():
        WsTicket.insert(
            ticket_hash=hash_api_key(ticket), user=user.id, session_id=session_id, expires_at=expires
        ).execute()
    return ticket


def redeem_ticket(ticket: str, now: float | None = None) -> tuple[User, str]:
    """The active user a ticket was issued to, and its session; the ticket is used up, valid or not."""
    with write_transaction():
        row = database.execute_sql(
            "DELETE FROM ws_tickets WHERE ticket_hash = ? RETURNING user_id, expires_at, session_id",
            (hash_api_key(ticket),),
        ).fetchone()
    if row is None:
        raise ApiProblem(401, "Unknown or already used ticket")
    if row[1] < int(now if now is not None else time.time()):
        raise ApiProblem(401, "The ticket has expired; ask POST /api/ws/ticket for a new one")
    user = User.get_or_none((User.id == row[0]) & User.active)
    if user is None:
        raise ApiProblem(401, "The account of this ticket is disabled")
    return user, row[2]


# -- admission -----------------------------------------------------------------------------------


def allowed_origins(settings: dict[str, Any]) -> set[str]:
    return {o.strip().rstrip("/").lower() for o in settings["ws_allowed_origins"].split(",") if o.strip()}


def check_origin(settings: dict[str, Any]) -> None:
    """Browsers send Origin: it must be the service's own or one allowed; scripts send none."""
    origin = request.headers.get("Origin")
    if origin is None:
        return
    own = f"{request.scheme}://{request.host}".lower()
    if origin.rstrip("/").lower() not in allowed_origins(settings) | {own}:
        raise ApiProblem(403, f"Origin {origin!r} may not open WebSockets here (setting ws_allowed_origins)")


def _caller() -> tuple[User, str] | None:
    """The user of the ticket or token and its login session, None without either; 401 when invalid."""
    state = current_app.extensions["weather_metrics"]
    ticket = request.args.get("ticket")
    if ticket:
        return redeem_ticket(ticket)
    token = request.args.get("token") or request.args.get("access_token") or bearer_token()
    if not token:
        return None
    try:
        user, claims = state.tokens.authenticate(token)
    except TokenError as exc:
        raise ApiProblem(401, str(exc)) from None
    return user, claims["sid"]


def client_for(user: User | None, queue_limit: int, session_id: str | None = None) -> Client:
    """A client with the rights of `user` (None: the public room only)."""
    if user is None:
        return Client(None, None, None, queue_limit)
    return Client(user.id, user.role, scope_for(user), queue_limit, session_id=session_id)


def check_handshake() -> None:
    """400 for an upgrade the WebSocket library would fail on (before a ticket is used up)."""
    if request.method != "GET":
        raise ApiProblem(400, "A WebSocket opens with GET")
    try:
        request.headers.get("Host", "").encode("ascii").decode("idna")
        valid_host = bool(request.headers.get("Host"))
    except UnicodeError:
        valid_host = False
    if not valid_host:
        raise ApiProblem(400, "A WebSocket upgrade needs a valid Host header")
    key = request.headers.get("Sec-WebSocket-Key", "")
    try:
        valid_key = len(base64.b64decode(key, validate=True)) == 16
    except ValueError:
        valid_key = False
    if "websocket" not in request.headers.get("Upgrade", "").lower() or not valid_key:
        raise ApiProblem(400, "A WebSocket upgrade needs Upgrade: websocket and a Sec-WebSocket-Key of 16 bytes")
    if request.headers.get("Sec-WebSocket-Version") != "13":
        raise ApiProblem(400, "Only WebSocket version 13 is spoken here", headers={"Sec-WebSocket-Version": "13"})


def socket_threads(settings: dict[str, Any]) -> int:
    """Sockets one process may hold: each takes a server thread, and RESERVED_THREADS stay for HTTP."""
    return max(1, settings["threads"] - RESERVED_THREADS)


def reserve_slot(relay: Relay, slot: str, holder: str, settings: dict[str, Any], now: float) -> str:
    """Record connection `slot` of `holder`, within the per-user and total limits of every process.

    The caller holds one of this process's socket threads (`relay.hub.reserve`).
    """
    moment = int(now)
    with write_transaction():
        fresh = moment - STALE_SECONDS
        mine = database.execute_sql(
            "SELECT COUNT(*) FROM ws_connections WHERE holder = ? AND seen_at >= ?", (holder, fresh)
        ).fetchone()[0]
        if mine >= settings["ws_max_connections_per_user"]:
            raise ApiProblem(
                429,
                f"At most {settings['ws_max_connections_per_user']} WebSocket connections per user; close one first",
            )
        total = database.execute_sql("SELECT COUNT(*) FROM ws_connections WHERE seen_at >= ?", (fresh,)).fetchone()[0]
        if total >= settings["ws_max_connections"]:
            raise ApiProblem(
                503,
                "The service has as many WebSocket connections as it takes; try again",
                headers={"Retry-After": "30"},
            )
        database.execute_sql(
            "INSERT INTO ws_connections (id, holder, process, opened_at, seen_at) VALUES (?, ?, ?, ?, ?)",
            (slot, holder, relay.process, moment, moment),
        )
    return slot


def release_slot(slot: str) -> None:
    with write_transaction():
        database.execute_sql("DELETE FROM ws_connections WHERE id = ?", (slot,))


@bp.before_request
def admit() -> Any:
    """Refuse before the upgrade: bad Origin 403, bad credentials 401, limits 429/503."""
    state = current_app.extensions["weather_metrics"]
    settings = state.settings
    try:
        check_origin(settings)
        check_handshake()
        if not state.relay.hub.reserve(socket_threads(settings)):  # before a ticket is used up
            raise ApiProblem(
                503,
                "This server process has no thread free for another WebSocket; try again",
                headers={"Retry-After": "5"},
            )
        g.ws_thread = True
        caller = _caller()
        user, session_id = caller if caller is not None else (None, None)
        holder = user.id if user is not None else "ip:" + (request.remote_addr or "unknown")
        client = g.ws_client = client_for(user, settings["ws_send_queue"], session_id)
        g.ws_slot = reserve_slot(state.relay, client.id, holder, settings, time.time())
    except ApiProblem as exc:
        return error_response(exc)
    # No permessage-deflate: compressing each small JSON message for each socket cost more
    # server time than it saves bytes (bench/live.py).
    request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
    return None


@bp.teardown_request
def release(_exc: BaseException | None) -> None:
    if g.pop("ws_thread", False):
        current_app.extensions["weather_metrics"].relay.hub.unreserve()
    slot = g.pop("ws_slot", None)
    if slot is not None:
        try:
            release_slot(slot)
        except Exception:  # noqa: BLE001 - the row expires with its process's heartbeat
            current_app.logger.exception("releasing a WebSocket connection row failed")


# -- the protocol --------------------------------------------------------------------------------


def _error(code: str, text: str, room: str | None = None) -> str:
    error: dict[str, Any] = {"code": code, "message": text}
    if room is not None:
        error["room"] = room
    return json.dumps({"type": "error", "error": error})


def room_problem(client: Client, room: str) -> tuple[str, str] | None:
    """Why `client` may not join `room` (error code and message), or None when it may."""
    if room == "public":
        return None
    if client.user_id is None:
        return "UNAUTHORIZED", "Only the public room is open without a token or ticket"
    kind, _, target = room.partition(":")
    if room == "org":
        return None if client.role == "admin" else ("FORBIDDEN", "The org room is for admins")
    if room == "alerts":
        return (
            None if client.role in ("admin", "manager") else ("FORBIDDEN", "The alerts room is for admins and managers")
        )
    if kind in ("team", "user") and target and client.scope is not None:
        try:  # the rule of every query: the organization's, and within the caller's scope
            narrow(client.scope, user_id=target if kind == "user" else None, team_id=target if kind == "team" else None)
        except UnknownTarget as exc:
            return "NOT_FOUND", str(exc)
        except OutOfScope as exc:
            return "FORBIDDEN", str(exc)
        return None
    if kind == "dashboard" and target:
        user = User.get_or_none(User.id == client.user_id)
        try:
            if user is None:
                raise NotFound(f"Dashboard {target} not found")
            find_dashboard(user, target)
        except NotFound as exc:
            return "NOT_FOUND", str(exc)
        return None
    return "BAD_ROOM", "Rooms are public, org, alerts, team:<id>, user:<id> and dashboard:<id>"


def _rooms(message: dict[str, Any]) -> list[str] | str:
    rooms = message.get("rooms")
    if not isinstance(rooms, list) or not rooms or not all(isinstance(r, str) for r in rooms):
        return "rooms must be a non-empty list of room names"
    if len(rooms) > MAX_ROOMS or any(len(r) > MAX_ROOM_LENGTH for r in rooms):
        return f"at most {MAX_ROOMS} rooms of at most {MAX_ROOM_LENGTH} characters"
    return list(dict.fromkeys(rooms))


def handle(relay: Relay, client: Client, raw: str | bytes, send: Callable[[str], None]) -> None:
    """Answer one message of the client."""
    try:
        if isinstance(raw, bytes):
            raise ValueError
        message = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: brackets nested thousands deep
        send(_error("BAD_MESSAGE", 'Messages are JSON text, such as {"type": "subscribe", "rooms": ["org"]}'))
        return
    kind = message.get("type") if isinstance(message, dict) else None
    if kind == "ping":
        send(json.dumps({"type": "pong"}))
        return
    if kind not in ("subscribe", "unsubscribe"):
        send(_error("BAD_MESSAGE", "type must be subscribe, unsubscribe or ping"))
        return
    rooms = _rooms(message)
    if isinstance(rooms, str):
        send(_error("BAD_MESSAGE", rooms))
        return
    if kind == "unsubscribe":
        for room in rooms:
            relay.hub.leave(client, room)
        send(json.dumps({"type": "unsubscribed", "rooms": rooms}))
        return
    granted = []
    for room in rooms:
        problem = room_problem(client, room)
        if problem is not None:
            send(_error(problem[0], problem[1], room))
            continue
        if len(client.rooms | {room}) > MAX_ROOMS:
            send(_error("TOO_MANY_ROOMS", f"At most {MAX_ROOMS} rooms per connection", room))
            continue
        relay.hub.join(client, room)
        granted.append(room)
    send(json.dumps({"type": "subscribed", "rooms": granted}))
    for room in granted:
        if room.startswith("dashboard:") and client.organization_id is not None:
            relay.dashboard_changed(client.organization_id, room.partition(":")[2])  # its current data


class _GuardedSocket:
    """The connection's socket: frames written whole, and what a client may send bounded.

    simple-websocket writes with `socket.send`, which may write only part of a frame when
    the send buffer is nearly full; the rest would be lost and the stream corrupted. Its
    reader thread reads and buffers everything the client sends, pings and fragments
    included, even while this connection's thread is busy: a byte budget on reading (a
    burst, then a steady rate) bounds that memory and CPU whatever the client sends.
    """

    def __init__(self, sock: socket.socket, client: Client) -> None:
        self._sock = sock
        self._client = client
        # The reader thread sends pings, pongs and closes on the same socket: frames must not interleave.
        self._lock = threading.Lock()
        self._allowance = float(INPUT_BURST_BYTES)
        self._refilled = time.monotonic()

    def send(self, data: bytes) -> int:
        with self._lock:
            self._sock.sendall(data)
        return len(data)

    def recv(self, size: int) -> bytes:
        data = self._sock.recv(size)
        now = time.monotonic()
        self._allowance = min(INPUT_BURST_BYTES, self._allowance + (now - self._refilled) * INPUT_BYTES_PER_SECOND)
        self._refilled = now
        self._allowance -= len(data)
        if self._allowance < 0:
            self._client.drop(CLOSE_POLICY, f"Too much input: at most {INPUT_BYTES_PER_SECOND} bytes a second")
            raise OSError("input budget exceeded")  # the reader thread stops reading and closes
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def serve(ws: Server, relay: Relay, client: Client, settings: dict[str, Any]) -> None:
    """Run one connection: one event wakes this thread for the client's messages and for ours."""
    try:
        ws.event = client.wake  # the reader thread sets it on input; the relay on output
        client.wake.set()  # a message that arrived before the swap is read at once
        ws.sock = _GuardedSocket(ws.sock, client)
        ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, settings["ws_send_buffer_bytes"])
        ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small messages go out at once
        ws.sock.settimeout(settings["ws_send_timeout_seconds"])  # a client that stops reading is dropped
    except OSError:
        return  # the client went away during the handshake
    if not database.is_closed():
        database.close()  # a socket lives long: it borrows a connection per message, not for its life
    relay.hub.add(client)
    try:
        ws.send(
            json.dumps(
                {
                    "type": "welcome",
                    "data": {
                        "connection_id": client.id,
                        "user_id": client.user_id,
                        "organization_id": client.organization_id,
                        "role": client.role,
                        "ping_interval_seconds": settings["ws_ping_interval_seconds"],
                    },
                }
            )
        )
        allowance, refilled = float(MESSAGE_BURST), time.monotonic()
        while True:
            client.wake.wait(timeout=5.0)
            client.wake.clear()
            while client.dropped is None and (raw := ws.receive(timeout=0)) is not None:
                now = time.monotonic()
                allowance = min(MESSAGE_BURST, allowance + (now - refilled) * MESSAGES_PER_SECOND)
                refilled = now
                if allowance < 1:
                    client.drop(CLOSE_POLICY, f"Too many messages: at most {MESSAGES_PER_SECOND} a second")
                    break
                allowance -= 1
                with database.connection_context():
                    handle(relay, client, raw, ws.send)
            # Checked after reading: receive() shares the wake-up event and may have consumed a drop's.
            if client.dropped is not None:
                log.info("WebSocket %s of %s closed: %s", client.id, client.user_id or "anonymous", client.dropped[1])
                _close(ws, *client.dropped)
                return
            if client.queue:  # what waits goes out in one write; the frames were built once per room
                ws.sock.send(client.take())
    except TimeoutError:
        log.info("WebSocket %s of %s dropped: too slow, a send timed out", client.id, client.user_id or "anonymous")
        _abort(ws)
    except (ConnectionClosed, OSError):
        if client.dropped is not None:
            log.info("WebSocket %s of %s closed: %s", client.id, client.user_id or "anonymous", client.dropped[1])
    except Exception:  # noqa: BLE001 - the socket is ours: end it here, never as an HTTP 500 inside it
        log.exception("WebSocket %s failed", client.id)
        _close(ws, CLOSE_INTERNAL, "Internal error")
    finally:
        relay.hub.remove(client)


def _close(ws: Server, code: int, reason: str) -> None:
    try:
        ws.close(code, reason)
    except Exception:  # noqa: BLE001 - closed already, a dead socket, or a close the protocol refuses
        _abort(ws)


def _abort(ws: Server) -> None:
    """Cut a connection we cannot even send a close frame to."""
    ws.connected = False
    try:
        ws.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


@bp.errorhandler(OSError)
@bp.errorhandler(RemoteProtocolError)
@bp.errorhandler(LocalProtocolError)
def upgrade_failed(exc: Exception) -> Any:
    """The upgrade itself failed: the client went away mid-handshake, or sent one the protocol refuses."""
    log.info("WebSocket upgrade failed: %s: %s", type(exc).__name__, exc)
    return error_response(ApiProblem(400, "The WebSocket handshake failed"))


@sock.route("/ws", bp=bp)
def websocket(ws: Server) -> None:
    state = current_app.extensions["weather_metrics"]
    serve(ws, state.relay, g.ws_client, state.settings)


class _ReaderThread(threading.Thread):
    """simple-websocket's reader thread, as a daemon: one waiting for the next ping must not hold up an exit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.daemon = True


def init_app(app: Any) -> None:
    settings = app.extensions["weather_metrics"].settings
    app.config["SOCK_SERVER_OPTIONS"] = {
        "ping_interval": settings["ws_ping_interval_seconds"],
        "max_message_size": MAX_MESSAGE_BYTES,
        "thread_class": _ReaderThread,
    }
    app.register_blueprint(bp)
