"""POST /api/ws/ticket: a short-lived single-use ticket that opens /ws without a token in the URL."""

from __future__ import annotations

from typing import Any

from flask import g, jsonify
from flask.typing import ResponseReturnValue
from marshmallow import Schema, fields

from weather_metrics.web.api.blueprint import bp
from weather_metrics.web.auth import authenticated, current_user
from weather_metrics.web.openapi import BEARER, RATE_LIMITED, UNAUTHORIZED, operation, query
from weather_metrics.web.services import services
from weather_metrics.web.ws.admission import issue_ticket


@bp.post("/ws/ticket")
@authenticated()
def ws_ticket() -> ResponseReturnValue:
    """A ticket for `/ws?ticket=...`: valid `ws_ticket_seconds`, once; the socket gets the caller's rights."""
    seconds = services().settings["ws_ticket_seconds"]
    ticket = issue_ticket(current_user(), g.claims["sid"], seconds)
    return jsonify({"ticket": ticket, "expires_in": seconds, "url": f"/ws?ticket={ticket}"}), 201


PROTOCOL = """Real-time updates over a WebSocket (raw JSON text frames, not Socket.io).

**Opening.** `GET /ws` with `Upgrade: websocket`. Credentials, any one of: `?ticket=` (from
`POST /api/ws/ticket`: single use, short-lived; for browsers), `?token=<access token>`, or
`Authorization: Bearer <access token>`. Without any, only the `public` room is open.
Refusals come before the upgrade, as ordinary answers in the /api error format: 401 bad
credentials, 403 an Origin outside `ws_allowed_origins` (clients that send no Origin are
not browsers and are let in), 429 when the user already has ws_max_connections_per_user
(5) sockets open, 503 when the service or this server process has no room for another.

**Client messages.** `{"type": "subscribe", "rooms": [...]}`, or the contract's form
`{"type": "subscribe", "data": {"rooms": [...], "user_id": ...}}` (user_id is not needed: the
socket's credentials say who it is), answers `{"type": "subscribed", "rooms": [granted]}`,
preceded by one `{"type": "error", "error": {"code", "message", "room"}, "data": {the same}}`
per refused room (codes FORBIDDEN, NOT_FOUND, UNAUTHORIZED, BAD_ROOM, TOO_MANY_ROOMS).
`{"type": "unsubscribe", "rooms": [...]}` (or `data.rooms`) answers `{"type": "unsubscribed", "rooms": [...]}`;
`{"type": "ping"}` answers `{"type": "pong"}`. Anything else: an error with code BAD_MESSAGE.
Messages over 64 KiB close the socket (1009); more than 10 messages a second (after a burst
of 30) or 8 KiB a second (after 256 KiB), 1008.

**Rooms.** `public` (anyone: /v1 ingestion counts), `org` (admins), `alerts` (admins; managers
get their teams' alerts), `team:<id>` (admins, the team's managers), `user:<id>` (the user,
admins, managers of the user's teams), `dashboard:<id>` (whoever may read the dashboard).

**Server messages.** First `{"type": "welcome", "data": {"connection_id", "user_id",
"organization_id", "role", "ping_interval_seconds"}}`. Then events
`{"type", "room", "data"}`: `metric_ingested` once per committed batch and room (data:
`metric_type`, `user_id`, `team_id`, `count`, `timestamp`, `batch_id`, `metric_types`,
`user_ids`, counting only the rows the room shows; in `public`: `source`, `count`, `errors`,
`timestamp`, at most once per `ws_public_interval_seconds`), `dashboard_update` per widget
(`dashboard_id`, `widget_id`, `data` as in GET /api/dashboards/{id}/data, `timestamp`; at most once
per `ws_dashboard_interval_seconds` per dashboard, and once on subscribing), and
`alert_triggered` (`alert_id`, `rule_id`, `rule_name`, `severity`, `metric`, `comparison`,
`metric_value`, `threshold`, `affected_users`, `timestamp`).

**Closing.** The server pings every `ws_ping_interval_seconds` and closes a socket that misses
a pong (1008). A client that does not read its messages is dropped: with 1013 when a close
frame still fits, else the connection is cut. 4401 ends a socket whose login session ended
or whose account was disabled, 4403 one whose role changed, 1001 a server restart."""


TAG = "Live updates"
PATHS: dict[str, dict[str, Any]] = {
    "/api/ws/ticket": {
        "post": operation(
            "A single-use ticket for /ws?ticket=..., valid ws_ticket_seconds (30)",
            TAG,
            "201 The ticket",
            "WsTicket",
            {**UNAUTHORIZED, **RATE_LIMITED},
        )
    },
    "/ws": {
        "get": operation(
            "WebSocket: live metric, dashboard and alert events",
            TAG,
            "101 Switching to the WebSocket protocol",
            None,
            {
                "400": "Not a WebSocket upgrade",
                "401": "Invalid token or ticket",
                "403": "Origin not allowed",
                "429": "ws_max_connections_per_user (5) sockets of this user are open",
                "503": "No room for another socket; retry later",
            },
            # A ticket or token in the query string, or a bearer token; without any, only the public room.
            security=[*BEARER, {}],
            description=PROTOCOL,
            parameters=[
                query("ticket", {"type": "string"}, "From POST /api/ws/ticket"),
                query("token", {"type": "string"}, "An access token, for clients that cannot send headers"),
            ],
        )
    },
}


class WsTicketSchema(Schema):
    """The answer of POST /api/ws/ticket."""

    ticket = fields.String(required=True)
    expires_in = fields.Integer(required=True, metadata={"description": "seconds"})
    url = fields.String(required=True, metadata={"example": "/ws?ticket=..."})


COMPONENTS: dict[str, Any] = {"WsTicket": WsTicketSchema}
