"""The /v1 blueprint: the contract's error body and the per-address rate limit."""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from weather_metrics.web.services import services
from weather_metrics.web.v1.errors import ApiError, as_api_error
from weather_metrics.web.v1.shortcut import RATE_DECISION, bucket_key

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
INGESTION = {"v1.create_events"}


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
    if request.endpoint in INGESTION and status >= 400:
        log_refusal(status, body)
    response = jsonify(body)
    if isinstance(exc, HTTPException) and not isinstance(exc, ApiError):
        # Keep what the exception says beyond the body, such as Allow on a 405.
        response.headers.extend((k, v) for k, v in exc.get_headers() if k.lower() != "content-type")
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response, status


def log_refusal(status: int, body: dict[str, Any]) -> None:
    """A refused batch at INFO, with why (field paths and messages, never values); a few a minute per address."""
    address = request.remote_addr or "unknown"
    skipped = services().refusals.allow(address, time.time())
    if skipped is None:
        return
    details = body.get("details")
    shown = "; ".join(str(d) for d in details[:5]) if isinstance(details, list) else str(details)
    more = f" (+{skipped} more refused before this)" if skipped else ""
    log.info("refused POST /v1/events from %s: %s %s: %s%s", address, status, body["error"], shown[:500], more)


def client_bucket(bucket: str) -> str:
    """The limiter key of this client's `bucket`: "events" (POST /v1/events) or "reads" (/v1 reads, pages)."""
    return bucket_key(bucket, request.remote_addr)


@bp.before_request
def limit_rate() -> None:
    """60 requests a minute per client IP (plus a burst), across every thread.

    Ingestion and reads count in separate buckets of that size: an operator's curl of
    /v1/stats from the same address must not cost a server a batch (such clients never retry).
    """
    if request.endpoint in RATE_LIMIT_EXEMPT:
        return
    decision = request.environ.get(RATE_DECISION)  # already counted by the shortcut (shortcut.py)
    if decision is None:
        decision = services().limiter.hit(client_bucket("events" if request.endpoint in INGESTION else "reads"))
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
