"""The client side of the /ws protocol: subscribe, unsubscribe and ping, and who may join which room."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from weather_metrics.core.errors import NotFound, OutOfScope, UnknownTarget
from weather_metrics.dashboards import find_dashboard
from weather_metrics.live.hub import Client
from weather_metrics.live.relay import Relay
from weather_metrics.query.scope import narrow, scope_for
from weather_metrics.store.models import User

MAX_ROOMS = 50
MAX_ROOM_LENGTH = 200


def client_for(user: User | None, queue_limit: int, session_id: str | None = None) -> Client:
    """A client with the rights of `user` (None: the public room only)."""
    if user is None:
        return Client(None, None, None, queue_limit)
    return Client(user.id, user.role, scope_for(user), queue_limit, session_id=session_id)


def _error(code: str, text: str, room: str | None = None) -> str:
    """An error message; the reason is in `error` and, for clients of the contract's form, in `data` too."""
    error: dict[str, Any] = {"code": code, "message": text}
    if room is not None:
        error["room"] = room
    return json.dumps({"type": "error", "error": error, "data": error})


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
    """The rooms a message names: `rooms`, or the contract's `data.rooms` (its `data.user_id` is not needed)."""
    rooms = message.get("rooms")
    data = message.get("data")
    if rooms is None and isinstance(data, dict):
        rooms = data.get("rooms")
    if not isinstance(rooms, list) or not rooms or not all(isinstance(r, str) for r in rooms):
        return "rooms (or data.rooms) must be a non-empty list of room names"
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
