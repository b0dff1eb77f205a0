"""The /v1 blueprint: the contract's error body and the per-address rate limit."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from weather_metrics.web.services import services
from weather_metrics.web.v1.errors import ApiError, as_api_error

log = logging.getLogger(__name__)


bp = Blueprint("v1", __name__, url_prefix="/v1")


HTTP_ERROR_CODES = {
    400: "invalid_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "invalid_request",
    429: "rate_limit_exceeded",
    503: "service_unavailable",
}


RATE_LIMIT_EXEMPT = {"v1.health"}


def error_response(exc: Exception) -> tuple[Response, int]:
    """The contract's error body, {"error", "details", "retry_after"}, for any exception."""
    exc = as_api_error(exc)
    if isinstance(exc, ApiError):
        status, body = exc.code or 500, {"error": exc.error, "details": exc.details}
    elif isinstance(exc, HTTPException):
        status = exc.code or 500
        body = {"error": HTTP_ERROR_CODES.get(status, "http_error"), "details": exc.description}
    else:
        log.exception("unhandled error on %s %s", request.method, request.path)
        status, body = 500, {"error": "internal_server_error", "details": "An unexpected error occurred"}
    retry_after = getattr(exc, "retry_after", None)
    if status == 429:
        body["message"] = "Too many requests, please try again later"
    if retry_after is not None:
        body["retry_after"] = retry_after
    response = jsonify(body)
    if isinstance(exc, HTTPException) and not isinstance(exc, ApiError):
        # Keep what the exception says beyond the body, such as Allow on a 405.
        response.headers.extend((k, v) for k, v in exc.get_headers() if k.lower() != "content-type")
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response, status


@bp.before_request
def limit_rate() -> None:
    """60 requests a minute per client IP (plus a burst), across every thread."""
    if request.endpoint in RATE_LIMIT_EXEMPT:
        return
    decision = services().limiter.hit(request.remote_addr or "unknown")
    g.rate_limit = decision
    if not decision.allowed:
        raise ApiError(429, "rate_limit_exceeded", "Rate limit exceeded", retry_after=decision.retry_after)


@bp.after_request
def add_rate_limit_headers(response: Response) -> Response:
    decision: Any = g.pop("rate_limit", None)
    if decision is not None:
        response.headers.update(decision.headers())
    return response


bp.register_error_handler(Exception, error_response)
