"""The error body of /api, /mcp and /ws, and the one place domain errors become HTTP answers."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from flask import Response, g, jsonify, request
from flask_limiter import RateLimitExceeded
from werkzeug.exceptions import HTTPException

from weather_metrics.core.errors import (
    Conflict,
    NotFound,
    NotStored,
    OutOfScope,
    QueryError,
    Rejected,
    Unavailable,
    UnknownTarget,
)
from weather_metrics.core.times import iso
from weather_metrics.store.db import storage_error
from weather_metrics.web.services import services

log = logging.getLogger(__name__)

CODES = {
    400: "VALIDATION_ERROR",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    503: "SERVICE_UNAVAILABLE",
}


class ApiProblem(HTTPException):
    """An error answer of this surface: status, message and per-field details."""

    def __init__(
        self, status: int, message: str, details: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(description=message)
        self.code = status
        self.details = details or {}
        self.extra_headers = headers or {}


def as_problem(exc: Exception) -> Exception:
    """The ApiProblem a domain exception stands for; other exceptions unchanged."""
    full = storage_error(exc)
    if full is not None:
        log.warning("refused %s %s: %s", request.method, request.path, exc)
        exc = full
    if isinstance(exc, (NotFound, UnknownTarget)):
        return ApiProblem(404, str(exc))
    if isinstance(exc, Conflict):
        return ApiProblem(409, str(exc))
    if isinstance(exc, OutOfScope):
        return ApiProblem(403, str(exc))
    if isinstance(exc, (Rejected, QueryError)):
        return ApiProblem(getattr(exc, "status", 400), str(exc), exc.details)
    if isinstance(exc, NotStored):
        log.error("a batch was refused by the database: %s", exc)
        return ApiProblem(500, "The database refused this batch; nothing of it was stored")
    if isinstance(exc, Unavailable):  # nothing of the request was stored
        wait = g.retry_after_wait = services().settings["retry_after_seconds"]
        return ApiProblem(503, str(exc), {"retry_after": wait}, {"Retry-After": str(wait)})
    return exc


def error_response(exc: Exception) -> tuple[Response, int]:
    """{"error": {"code", "message", "details", "timestamp", "request_id"}} for any exception."""
    headers: list[tuple[str, str]] = []
    details: dict[str, Any] = {}
    exc = as_problem(exc)
    if isinstance(exc, ApiProblem):
        status, message, details = exc.code or 500, exc.description or "", exc.details
        headers = list(exc.extra_headers.items())
    elif isinstance(exc, RateLimitExceeded):
        status, message = 429, f"Rate limit exceeded: {exc.description}"
    elif isinstance(exc, HTTPException):
        status, message = exc.code or 500, exc.description or ""
        headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
    else:
        log.exception("unhandled error on %s %s", request.method, request.path)
        status, message = 500, "An unexpected error occurred"
    body = {
        "error": {
            "code": CODES.get(status, "HTTP_ERROR"),
            "message": message,
            "details": details,
            "timestamp": iso(datetime.now(UTC)),
            "request_id": g.get("request_id", ""),
        }
    }
    response = jsonify(body)
    response.headers.extend(headers)
    if status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response, status
