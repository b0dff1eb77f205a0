"""POST /v1/events."""

from __future__ import annotations

from flask import jsonify, request
from flask.typing import ResponseReturnValue

from weather_metrics.web.bodies import read_body
from weather_metrics.web.services import services
from weather_metrics.web.v1.blueprint import bp

MAX_BODY_BYTES = 100 * 1024


@bp.post("/events")
def create_events() -> ResponseReturnValue:
    """Accept a batch of 1-100 tool-call events."""
    intake = services().intake
    return jsonify(intake.accept(read_body(MAX_BODY_BYTES), request.headers.get("Idempotency-Key")))
