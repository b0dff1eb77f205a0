"""GET /v1/stats/*: aggregates over 7, 30 or 90 days."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import current_app, request
from flask.typing import ResponseReturnValue

from weather_metrics.query import stats
from weather_metrics.web.v1.blueprint import bp
from weather_metrics.web.v1.errors import ApiError, invalid_request


def _period() -> str:
    period = request.args.get("period", stats.DEFAULT_PERIOD)
    if period not in stats.PERIODS:
        raise invalid_request(f"period must be one of {', '.join(stats.PERIODS)}; got '{period}'")
    return period


def _now() -> datetime:
    return datetime.now(UTC)


def _answer(text: str) -> ResponseReturnValue:
    """An answer's JSON text as kept in memory: the body jsonify would send, without encoding it again."""
    return current_app.response_class(text + "\n", mimetype="application/json")


@bp.get("/stats/overview")
def overview() -> ResponseReturnValue:
    """Summary across all tools."""
    return _answer(stats.overview.text(_period(), _now()))


@bp.get("/stats/tools")
def tools() -> ResponseReturnValue:
    """Calls, success rate and response time of every tool."""
    return _answer(stats.tools.text(_period(), _now()))


@bp.get("/stats/tool/<tool_name>")
def tool(tool_name: str) -> ResponseReturnValue:
    """Daily series, versions and countries of one tool."""
    period = _period()
    try:
        return _answer(stats.tool_detail.text(tool_name, period, _now()))
    except stats.UnknownTool:
        raise ApiError(404, "not_found", f"Tool '{tool_name}' not found or has no data") from None


@bp.get("/stats/errors")
def errors() -> ResponseReturnValue:
    """Error types with counts and when each was last seen."""
    return _answer(stats.errors.text(_period(), _now()))


@bp.get("/stats/performance")
def performance() -> ResponseReturnValue:
    """Response-time percentiles, cache performance and service distribution."""
    return _answer(stats.performance.text(_period(), _now()))
