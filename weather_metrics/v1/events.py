"""POST /v1/events."""

from __future__ import annotations

import json

from flask import current_app, jsonify, request
from flask.typing import ResponseReturnValue

from weather_metrics.errors import invalid_request
from weather_metrics.v1 import bp

MAX_BODY_BYTES = 100 * 1024


@bp.post("/events")
def create_events() -> ResponseReturnValue:
    """Accept a batch of 1-100 tool-call events."""
    request.max_content_length = MAX_BODY_BYTES
    raw = request.get_data(cache=False)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid_request(f"Malformed JSON: {exc}") from None
    intake = current_app.extensions["weather_metrics"].intake
    return jsonify(intake.accept(body, raw, request.headers.get("Idempotency-Key")))
