"""POST /api/ws/ticket: a short-lived single-use ticket that opens /ws without a token in the URL."""

from __future__ import annotations

from flask import current_app, jsonify
from flask.typing import ResponseReturnValue

from weather_metrics import sockets
from weather_metrics.api import authenticated, bp, current_user


@bp.post("/ws/ticket")
@authenticated()
def ws_ticket() -> ResponseReturnValue:
    """A ticket for `/ws?ticket=...`: valid `ws_ticket_seconds`, once; the socket gets the caller's rights."""
    seconds = current_app.extensions["weather_metrics"].settings["ws_ticket_seconds"]
    ticket = sockets.issue_ticket(current_user(), seconds)
    return jsonify({"ticket": ticket, "expires_in": seconds, "url": f"/ws?ticket={ticket}"}), 201
