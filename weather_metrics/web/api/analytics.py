"""/api/analytics: productivity trends with growth and insights, and team comparisons."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import jsonify, request
from flask.typing import ResponseReturnValue
from marshmallow import Schema, fields

from weather_metrics.core.errors import QueryError
from weather_metrics.core.vocabulary import AGGREGATIONS
from weather_metrics.query import analytics, periods
from weather_metrics.query.org_metrics import org_zone
from weather_metrics.query.scope import narrow
from weather_metrics.web.api.blueprint import bp
from weather_metrics.web.auth import authenticated, caller_scope
from weather_metrics.web.openapi import BEARER_OR_READ_KEY, RATE_LIMITED, operation, query
from weather_metrics.web.services import services

TREND_PARAMS = ("team_id", "start_date", "end_date", "aggregation", "comparison_period")
COMPARISON_PARAMS = ("team_ids", "team_ids[]", "metric_types", "metric_types[]", "date_range", "start_date", "end_date")


def check_params(allowed: tuple[str, ...]) -> None:
    """400 naming every query parameter the endpoint does not know (a typo must not pass silently)."""
    unknown = sorted(set(request.args) - set(allowed))
    if unknown:
        raise QueryError(analytics.BAD_QUERY, dict.fromkeys(unknown, "Unknown parameter"))


def _max_days() -> int:
    return int(services().settings["metrics_max_range_days"])


def _arg(name: str) -> str | None:
    return request.args.get(name) or None  # an empty value counts as not given


def _list(name: str) -> list[str]:
    """Comma-separated and repeated values (also as name[]), stripped, without blanks or repeats."""
    values = request.args.getlist(name) + request.args.getlist(name + "[]")
    items = (item.strip() for value in values for item in value.split(","))
    return list(dict.fromkeys(item for item in items if item))


@bp.get("/analytics/productivity-trends")
@authenticated(read_key=True)
def productivity_trends() -> ResponseReturnValue:
    """Totals, growth against a comparison period, series and insights of the caller's visible data."""
    check_params(TREND_PARAMS)
    scope = caller_scope()
    trend = periods.trend_windows(
        _arg("start_date"),
        _arg("end_date"),
        _arg("aggregation"),
        _arg("comparison_period"),
        org_zone(scope.organization_id),
        datetime.now(UTC),
        _max_days(),
    )
    scope = narrow(scope, team_id=_arg("team_id"))
    return jsonify(analytics.productivity_trends(scope, trend.window, trend.comparison, trend.label, trend.per_day))


@bp.get("/analytics/team-comparison")
@authenticated("admin", "manager", read_key=True)
def team_comparison() -> ResponseReturnValue:
    """Figures and rankings of teams over a date range (admins and read keys: any team; managers: their own)."""
    check_params(COMPARISON_PARAMS)
    scope = caller_scope()
    window = periods.comparison_range(
        _arg("date_range"),
        _arg("start_date"),
        _arg("end_date"),
        org_zone(scope.organization_id),
        datetime.now(UTC),
        _max_days(),
    )
    metric_types = analytics.metric_type_list(_list("metric_types"))
    teams = analytics.teams_to_compare(scope, _list("team_ids"))
    return jsonify(analytics.team_comparison(scope, teams, metric_types, window))


class TrendSpanSchema(Schema):
    start = fields.String(metadata={"description": "Local ISO 8601 start (inclusive)"})
    end = fields.String(metadata={"description": "Local ISO 8601 end (exclusive)"})


class TrendComparisonSchema(TrendSpanSchema):
    basis = fields.String(
        metadata={"enum": ["per_day"], "description": "Present when growth compares per-day averages"}
    )


class TrendPeriodSchema(TrendSpanSchema):
    time_zone = fields.String()
    aggregation = fields.String(metadata={"enum": ["hour", "day", "week", "month"]})


class TrendPointSchema(Schema):
    period = fields.String(metadata={"description": "Local start of the period"})
    total = fields.Float()


class MetricTrendSchema(Schema):
    metric_type = fields.String(metadata={"description": "A productivity type, or agent_executions"})
    total = fields.Float()
    previous_total = fields.Float(allow_none=True)
    growth_rate = fields.Float(allow_none=True, metadata={"description": "Fraction; null from a total of 0"})
    change = fields.Float(allow_none=True)
    series = fields.List(fields.Nested(TrendPointSchema))


class TrendInsightSchema(Schema):
    kind = fields.String(metadata={"enum": ["largest_increase", "largest_decrease", "new", "anomaly", "no_data"]})
    metric_type = fields.String(allow_none=True)
    message = fields.String()
    total = fields.Float()
    previous_total = fields.Float()
    growth_rate = fields.Float(allow_none=True)
    change = fields.Float()
    period = fields.String()
    value = fields.Float()
    median = fields.Float()
    direction = fields.String(metadata={"enum": ["spike", "drop"]})
    start = fields.String()
    end = fields.String()


class ProductivityTrendsSchema(Schema):
    period = fields.Nested(TrendPeriodSchema)
    comparison = fields.Nested(TrendComparisonSchema, allow_none=True)
    metrics = fields.List(fields.Nested(MetricTrendSchema))
    insights = fields.List(fields.Nested(TrendInsightSchema))


class ComparisonRangeSchema(TrendSpanSchema):
    time_zone = fields.String()


class TeamFiguresSchema(Schema):
    team_id = fields.String()
    name = fields.String()
    member_count = fields.Integer()
    metrics = fields.Dict(keys=fields.String(), values=fields.Float(allow_none=True))
    ranks = fields.Dict(keys=fields.String(), values=fields.Integer(allow_none=True))


class TeamRankSchema(Schema):
    team_id = fields.String()
    name = fields.String()
    value = fields.Float(allow_none=True)
    rank = fields.Integer(allow_none=True, metadata={"description": "1 is best; ties share a rank"})


class TeamComparisonSchema(Schema):
    date_range = fields.Nested(ComparisonRangeSchema)
    metric_types = fields.List(fields.String())
    teams = fields.List(fields.Nested(TeamFiguresSchema))
    rankings = fields.Dict(keys=fields.String(), values=fields.List(fields.Nested(TeamRankSchema)))


def _query(name: str, description: str, array: bool = False) -> dict[str, Any]:
    if not array:
        return query(name, {"type": "string"}, description)
    return {
        **query(name, {"type": "array", "items": {"type": "string"}}, description),
        "style": "form",
        "explode": False,
    }


TAG = "Analytics"
ERRORS = {
    "400": "Bad parameter: details names it",
    "403": "Role not allowed, or a team outside your scope",
    "404": "Team not in your organization",
    "401": "Missing, invalid or expired token, or an API key that is not of the read scope",
    **RATE_LIMITED,
}


def _get(summary: str, schema: str, ok: str, parameters: list[dict[str, Any]]) -> dict[str, Any]:
    return operation(summary, TAG, ok, schema, ERRORS, parameters=parameters, security=BEARER_OR_READ_KEY)


DATES = "ISO 8601 date (whole days in the organization's time zone) or date-time"
PATHS: dict[str, dict[str, Any]] = {
    "/api/analytics/productivity-trends": {
        "get": _get(
            "Productivity trends: totals, growth against a comparison period, series and insights (any role; "
            "data limited to what the caller may see)",
            "ProductivityTrends",
            "200 Trends",
            [
                _query("team_id", "Only this team: rows tagged with it or sent by its members"),
                _query("start_date", DATES + "; default 30 days before end_date"),
                _query("end_date", DATES + "; a date includes its day; default now"),
                query(
                    "aggregation",
                    {"type": "string", "enum": list(AGGREGATIONS)},
                    "Default: day up to 31 days, week up to 180, else month",
                ),
                _query(
                    "comparison_period",
                    "previous (default), previous_year, none, a length (7d, 2w, 3mo: the window of that length "
                    "before; growth then compares per-day averages), or START/END",
                ),
            ],
        )
    },
    "/api/analytics/team-comparison": {
        "get": _get(
            "Compare teams on productivity and agent metrics, with rankings (admin, manager, read key)",
            "TeamComparison",
            "200 Team figures and rankings",
            [
                _query("team_ids", "Team ids, comma-separated or repeated; at most 20; default your teams", True),
                _query(
                    "metric_types",
                    "Productivity types and/or agent_executions, agent_success_rate, agent_avg_duration_ms; "
                    "default every productivity type with data plus agent_executions",
                    True,
                ),
                _query("date_range", "7d, 30d (default), 90d, any <N>d, or START/END"),
                _query("start_date", DATES + "; instead of date_range"),
                _query("end_date", DATES + "; instead of date_range"),
            ],
        )
    },
}


COMPONENTS: dict[str, Any] = {
    # Nested schemas before the ones that hold them.
    "TrendSpan": TrendSpanSchema,
    "TrendPeriod": TrendPeriodSchema,
    "TrendPoint": TrendPointSchema,
    "MetricTrend": MetricTrendSchema,
    "TrendInsight": TrendInsightSchema,
    "ProductivityTrends": ProductivityTrendsSchema,
    "ComparisonRange": ComparisonRangeSchema,
    "TeamFigures": TeamFiguresSchema,
    "TeamRank": TeamRankSchema,
    "TeamComparison": TeamComparisonSchema,
}
