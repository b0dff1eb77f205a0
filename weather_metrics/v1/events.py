"""POST /v1/events."""

from __future__ import annotations

from flask import current_app, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import RequestEntityTooLarge

from weather_metrics.v1 import bp

MAX_BODY_BYTES = 100 * 1024


def _read_body() -> bytes:
    """The request body; 413 past the limit, whether or not Content-Length was sent."""
    too_large = RequestEntityTooLarge(f"Request body exceeds {MAX_BODY_BYTES} bytes")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise too_large
    raw = request.stream.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise too_large
    return raw


@bp.post("/events")
def create_events() -> ResponseReturnValue:
    """Accept a batch of 1-100 tool-call events."""
    intake = current_app.extensions["weather_metrics"].intake
    return jsonify(intake.accept(_read_body(), request.headers.get("Idempotency-Key")))
