"""Before a /ws upgrade: Origin, credentials (token or single-use ticket) and connection limits.

A refusal is an ordinary HTTP answer in the /api error format.
"""

from __future__ import annotations

import base64
import secrets
import time
from typing import Any

from flask import current_app, g, request

from weather_metrics.accounts.organizations import hash_api_key
from weather_metrics.accounts.tokens import TokenError
from weather_metrics.live.hub import ANONYMOUS
from weather_metrics.live.protocol import client_for
from weather_metrics.live.relay import STALE_SECONDS, Relay
from weather_metrics.store.db import execute, storage_error, write_transaction
from weather_metrics.store.models import User, WsTicket
from weather_metrics.web.auth import bearer_token
from weather_metrics.web.errors import ApiProblem, error_response
from weather_metrics.web.services import services
from weather_metrics.web.ws.blueprint import bp

# Server threads a process keeps for HTTP, however many sockets are open: each socket holds one.
RESERVED_THREADS = 8


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
        row = execute(
            "DELETE FROM ws_tickets WHERE ticket_hash = ? RETURNING user_id, expires_at, session_id",
            (hash_api_key(ticket),),
        ).fetchone()
    if row is None:
        raise ApiProblem(401, "Unknown or already used ticket")
    if row[1] < int(now if now is not None else time.time()):
        raise ApiProblem(401, "The ticket has expired; ask POST /api/ws/ticket for a new one")
    user = User.get_or_none((User.id == row[0]) & (User.active == True))  # noqa: E712 - peewee expression
    if user is None:
        raise ApiProblem(401, "The account of this ticket is disabled")
    return user, row[2]


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
    state = services()
    ticket = request.args.get("ticket")
    if ticket:
        user, session_id = redeem_ticket(ticket)
        try:
            state.tokens.check_session(session_id, user.id)  # a ticket lives no longer than its login
        except TokenError as exc:
            raise ApiProblem(401, f"The login session of this ticket is over: {exc}") from None
        return user, session_id
    token = request.args.get("token") or request.args.get("access_token") or bearer_token()
    if not token:
        return None
    try:
        user, claims = state.tokens.authenticate(token)
    except TokenError as exc:
        raise ApiProblem(401, str(exc)) from None
    return user, claims["sid"]


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
    """Sockets one process may hold: each takes a server thread, and RESERVED_THREADS stay for HTTP.

    Sockets without credentials may take half of them: the rest stay for signed-in users.
    """
    return max(1, settings["threads"] - RESERVED_THREADS)


def reserve_slot(relay: Relay, slot: str, holder: str, settings: dict[str, Any], now: float) -> str:
    """Record connection `slot` of `holder`, within the per-user and total limits of every process.

    The caller holds one of this process's socket threads (`relay.hub.reserve`).
    """
    moment = int(now)
    with write_transaction():
        fresh = moment - STALE_SECONDS
        mine = execute(
            "SELECT COUNT(*) FROM ws_connections WHERE holder = ? AND seen_at >= ?", (holder, fresh)
        ).fetchone()[0]
        if mine >= settings["ws_max_connections_per_user"]:
            raise ApiProblem(
                429,
                f"At most {settings['ws_max_connections_per_user']} WebSocket connections per user; close one first",
            )
        total = execute("SELECT COUNT(*) FROM ws_connections WHERE seen_at >= ?", (fresh,)).fetchone()[0]
        if total >= settings["ws_max_connections"]:
            raise ApiProblem(
                503,
                "The service has as many WebSocket connections as it takes; try again",
                headers={"Retry-After": "30"},
            )
        execute(
            "INSERT INTO ws_connections (id, holder, process, opened_at, seen_at) VALUES (?, ?, ?, ?, ?)",
            (slot, holder, relay.process, moment, moment),
        )
    return slot


def release_slot(slot: str) -> None:
    with write_transaction():
        execute("DELETE FROM ws_connections WHERE id = ?", (slot,))


@bp.before_request
def admit() -> Any:
    """Refuse before the upgrade: bad Origin 403, bad credentials 401, limits 429/503."""
    state = services()
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
        if user is None:
            if not state.relay.hub.reserve(max(1, socket_threads(settings) // 2), ANONYMOUS):
                raise ApiProblem(
                    503,
                    "Sockets without credentials have all the room they get here; sign in or try again",
                    headers={"Retry-After": "5"},
                )
            g.ws_anonymous = True
        holder = user.id if user is not None else "ip:" + (request.remote_addr or "unknown")
        client = g.ws_client = client_for(user, settings["ws_send_queue"], session_id)
        g.ws_slot = reserve_slot(state.relay, client.id, holder, settings, time.time())
    except ApiProblem as exc:
        return error_response(exc)
    except Exception as exc:
        if storage_error(exc) is None:
            raise
        return error_response(exc)  # a full disk: 503 with Retry-After, as on /api
    # No permessage-deflate: compressing each small JSON message for each socket cost more
    # server time than it saves bytes (bench/live.py).
    request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
    return None


@bp.teardown_request
def release(_exc: BaseException | None) -> None:
    if g.pop("ws_thread", False):
        services().relay.hub.unreserve()
    if g.pop("ws_anonymous", False):
        services().relay.hub.unreserve(ANONYMOUS)
    slot = g.pop("ws_slot", None)
    if slot is not None:
        try:
            release_slot(slot)
        except Exception:  # noqa: BLE001 - the row expires with its process's heartbeat
            current_app.logger.exception("releasing a WebSocket connection row failed")
