"""GET /api/metrics/agents and /api/metrics/productivity: organization metrics in the caller's scope.

The POST routes of the same URLs (ingestion) live in another module; these views only read.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import jsonify, request
from flask.typing import ResponseReturnValue
from marshmallow import Schema, ValidationError, fields, validate

from weather_metrics.core.vocabulary import AGGREGATIONS, BAD_METRIC_TYPE, MAX_AGENT_NAME, METRIC_TYPE
from weather_metrics.query import org_metrics
from weather_metrics.query.scope import Scope, narrow
from weather_metrics.query.windows import Window, parse_window
from weather_metrics.web.api.blueprint import bp
from weather_metrics.web.api.schemas import MAX_PAGE, StrictSchema
from weather_metrics.web.auth import authenticated, caller_scope
from weather_metrics.web.bodies import load
from weather_metrics.web.openapi import BEARER_OR_READ_KEY, RATE_LIMITED, operation
from weather_metrics.web.services import services

MAX_LIMIT = 1000
ID = validate.Length(1, 64)
DATE = validate.Length(1, 64)


class MetricsQuerySchema(StrictSchema):
    """What both metrics queries take: whose data, which dates, how grouped, which page."""

    user_id = fields.String(validate=ID, metadata={"description": "One user of your scope"})
    team_id = fields.String(validate=ID, metadata={"description": "One team of your scope"})
    start_date = fields.String(
        validate=DATE, metadata={"description": "ISO 8601 date or date-time; dates are in the organization's zone"}
    )
    end_date = fields.String(validate=DATE, metadata={"description": "ISO 8601; a date includes its whole day"})
    aggregation = fields.String(validate=validate.OneOf(AGGREGATIONS), load_default="day")
    page = fields.Integer(load_default=1, validate=validate.Range(1, MAX_PAGE), metadata={"description": "Series page"})
    limit = fields.Integer(load_default=100, validate=validate.Range(1, MAX_LIMIT))


def _metric_type(value: str) -> None:
    if not METRIC_TYPE.fullmatch(value):  # validate.Regexp only anchors the start
        raise ValidationError(BAD_METRIC_TYPE)


class AgentQuerySchema(MetricsQuerySchema):
    agent_name = fields.String(validate=validate.Length(1, MAX_AGENT_NAME))
    success_only = fields.Boolean(load_default=False, truthy={"true", "1"}, falsy={"false", "0"})


class ProductivityQuerySchema(MetricsQuerySchema):
    metric_type = fields.String(
        validate=_metric_type, metadata={"description": "One type, e.g. commits", "pattern": f"^{METRIC_TYPE.pattern}$"}
    )


def scope_and_window(scope: Scope, query: dict[str, Any]) -> tuple[Scope, Window]:
    """`scope` narrowed to the asked user or team (403/404), and the query's window (400); pages use it too."""
    window = parse_window(
        query.get("start_date"),
        query.get("end_date"),
        query["aggregation"],
        org_metrics.org_zone(scope.organization_id),
        datetime.now(UTC),
        services().settings["metrics_max_range_days"],
    )
    return narrow(scope, query.get("user_id"), query.get("team_id")), window


@bp.get("/metrics/agents")
@authenticated(read_key=True)
def read_agents() -> ResponseReturnValue:
    """Agent usage and durations in your scope: totals, per agent, and a series of periods."""
    query = load(AgentQuerySchema(), request.args.to_dict())
    scope, window = scope_and_window(caller_scope(), query)
    return jsonify(
        org_metrics.agent_metrics(
            scope,
            window,
            agent_name=query.get("agent_name"),
            success_only=query["success_only"],
            page=query["page"],
            limit=query["limit"],
        )
    )


@bp.get("/metrics/productivity")
@authenticated(read_key=True)
def read_productivity() -> ResponseReturnValue:
    """Productivity metrics in your scope: totals per type and a series of periods."""
    query = load(ProductivityQuerySchema(), request.args.to_dict())
    scope, window = scope_and_window(caller_scope(), query)
    return jsonify(
        org_metrics.productivity_metrics(
            scope, window, metric_type=query.get("metric_type"), page=query["page"], limit=query["limit"]
        )
    )


# Answers, for /openapi.json.
class WindowSchema(Schema):
    start = fields.DateTime(metadata={"description": "UTC, on the hour"})
    end = fields.DateTime(metadata={"description": "UTC, on the hour (excluded)"})
    time_zone = fields.String(metadata={"description": "The organization's IANA zone periods follow"})
    aggregation = fields.String(validate=validate.OneOf(AGGREGATIONS))


class PaginationSchema(Schema):
    page = fields.Integer()
    limit = fields.Integer()
    total = fields.Integer(metadata={"description": "Periods in the window"})
    pages = fields.Integer()


class AgentFiguresSchema(Schema):
    calls = fields.Integer()
    successes = fields.Integer()
    failures = fields.Integer()
    success_rate = fields.Float(allow_none=True, metadata={"description": "successes / calls; null without calls"})
    avg_duration_ms = fields.Float(allow_none=True)


class AgentStatsSchema(AgentFiguresSchema):
    p50_duration_ms = fields.Float(allow_none=True, metadata={"description": "Within 2.5%, over whole UTC days"})
    p95_duration_ms = fields.Float(allow_none=True)
    p99_duration_ms = fields.Float(allow_none=True)


class AgentEntrySchema(AgentStatsSchema):
    agent_name = fields.String()


class AgentPeriodSchema(AgentFiguresSchema):
    period = fields.String(metadata={"description": "Local start of the period, with its UTC offset"})


class AgentMetricsSchema(Schema):
    window = fields.Nested(WindowSchema)
    totals = fields.Nested(AgentStatsSchema)
    agents = fields.List(fields.Nested(AgentEntrySchema), metadata={"description": "Most calls first"})
    series = fields.List(fields.Nested(AgentPeriodSchema), metadata={"description": "Every period of the page"})
    pagination = fields.Nested(PaginationSchema)


class ValueFiguresSchema(Schema):
    samples = fields.Integer()
    sum = fields.Float()
    avg = fields.Float(allow_none=True)
    min = fields.Float()
    max = fields.Float()


class ProductivityTotalSchema(ValueFiguresSchema):
    metric_type = fields.String()


class ProductivityPeriodSchema(Schema):
    period = fields.String(metadata={"description": "Local start of the period, with its UTC offset"})
    metrics = fields.Dict(keys=fields.String(), values=fields.Nested(ValueFiguresSchema))


class ProductivityMetricsSchema(Schema):
    window = fields.Nested(WindowSchema)
    totals = fields.List(fields.Nested(ProductivityTotalSchema))
    series = fields.List(fields.Nested(ProductivityPeriodSchema), metadata={"description": "Every period of the page"})
    pagination = fields.Nested(PaginationSchema)


TAG = "Metrics"
ERRORS = {
    "400": "Bad query parameter: details names it",
    "401": "Missing, invalid or expired token, or an API key that is not of the read scope",
    "403": "The user or team is outside your scope",
    "404": "No such user or team in your organization",
    **RATE_LIMITED,
}
PATHS: dict[str, dict[str, Any]] = {
    "/api/metrics/agents": {
        "get": operation(
            "Agent usage and durations in your scope (read key: the organization): totals, per agent, periods",
            TAG,
            "200 Agent metrics",
            "AgentMetrics",
            ERRORS,
            parameters=[{"in": "query", "schema": AgentQuerySchema}],
            security=BEARER_OR_READ_KEY,
        ),
    },
    "/api/metrics/productivity": {
        "get": operation(
            "Productivity metrics in your scope (read key: the organization): totals per type, periods",
            TAG,
            "200 Productivity metrics",
            "ProductivityMetrics",
            ERRORS,
            parameters=[{"in": "query", "schema": ProductivityQuerySchema}],
            security=BEARER_OR_READ_KEY,
        ),
    },
}


COMPONENTS: dict[str, Any] = {
    "AgentMetrics": AgentMetricsSchema,
    "ProductivityMetrics": ProductivityMetricsSchema,
}
