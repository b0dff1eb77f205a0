"""POST /v1/events."""

from __future__ import annotations

from flask import jsonify, request
from flask.typing import ResponseReturnValue

from weather_metrics.web.bodies import read_body
from weather_metrics.web.services import services
from weather_metrics.web.v1.blueprint import bp
from weather_metrics.web.v1.shortcut import MAX_BODY_BYTES, OFFER_FAILED


@bp.post("/events")
def create_events() -> ResponseReturnValue:
    """Accept a batch of 1-100 tool-call events (most take the shortcut in front of Flask: shortcut.py)."""
    failed = request.environ.get(OFFER_FAILED)
    if failed is not None:
        raise failed  # the shortcut offered the batch and met this error: not offered twice
    intake = services().intake
    return jsonify(intake.accept(read_body(MAX_BODY_BYTES), request.headers.get("Idempotency-Key")))
