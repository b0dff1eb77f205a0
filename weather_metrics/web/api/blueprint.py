"""The /api blueprint: JWT-authenticated, scoped to the caller's organization; its rate limit and error handler."""

from __future__ import annotations

from flask import Blueprint

from weather_metrics.web.auth import caller_key
from weather_metrics.web.errors import error_response
from weather_metrics.web.limits import limiter
from weather_metrics.web.services import services

bp = Blueprint("api", __name__, url_prefix="/api")

# Every /api route: the spec's "1,000 requests per hour per user" (setting api_rate_limit).
limiter.limit(lambda: services().settings["api_rate_limit"], key_func=caller_key)(bp)
bp.register_error_handler(Exception, error_response)
