"""The /v1 part of /openapi.json: its paths, and its answers as marshmallow schemas."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields

from weather_metrics.ingest.events import schemas as contract
from weather_metrics.ingest.idempotency import MAX_IDEMPOTENCY_KEY
from weather_metrics.query.stats import DEFAULT_PERIOD, PERIODS
from weather_metrics.web.openapi import PUBLIC, json_content, operation


class AcceptedSchema(Schema):
    status = fields.String(metadata={"example": "accepted"})
    count = fields.Integer()
    timestamp = fields.DateTime()


class ErrorSchema(Schema):
    error = fields.String(metadata={"example": "validation_failed"})
    details = fields.Raw(metadata={"description": "A message, or a list of 'path: message' lines"})
    retry_after = fields.Integer(metadata={"description": "Seconds to wait (429 and 503 only)"})


class ToolSummarySchema(Schema):
    name = fields.String()
    calls = fields.Integer()
    success_rate = fields.Float(allow_none=True, metadata={"description": "Fraction 0-1; null without calls"})
    avg_response_time_ms = fields.Float(allow_none=True)
    p95_ms = fields.Float(
        allow_none=True,
        metadata={"description": "Added to the contract's fields: the tool's p95 (within 2.5%); null without times"},
    )


class ResponseTimesSchema(Schema):
    avg_ms = fields.Float(allow_none=True)
    p50_ms = fields.Float(allow_none=True, metadata={"description": "Nearest-rank percentiles, within 2.5% of exact"})
    p95_ms = fields.Float(allow_none=True)
    p99_ms = fields.Float(allow_none=True)


class ErrorTypeSchema(Schema):
    type = fields.String(metadata={"description": "error_type, or 'unknown' when the event had none"})
    count = fields.Integer()
    percentage = fields.Float(metadata={"description": "Share of all errors in the period, 0-1"})
    last_seen = fields.DateTime()


class OverviewSummarySchema(Schema):
    total_calls = fields.Integer()
    unique_versions = fields.Integer()
    active_installs = fields.Integer(metadata={"description": "Distinct session_id values seen in the period"})
    success_rate = fields.Float(allow_none=True)
    avg_response_time_ms = fields.Float(allow_none=True)


class OverviewSchema(Schema):
    period = fields.String()
    start_date = fields.DateTime()
    end_date = fields.DateTime()
    summary = fields.Nested(OverviewSummarySchema)
    tools = fields.List(fields.Nested(ToolSummarySchema))
    errors = fields.List(fields.Nested(ErrorTypeSchema))
    cache_hit_rate = fields.Float(allow_none=True)


class ToolsSchema(Schema):
    period = fields.String()
    tools = fields.List(fields.Nested(ToolSummarySchema))


class DailySchema(Schema):
    date = fields.Date()
    calls = fields.Integer()
    success_rate = fields.Float(allow_none=True)
    avg_response_time_ms = fields.Float(allow_none=True)


class VersionShareSchema(Schema):
    version = fields.String()
    calls = fields.Integer()
    percentage = fields.Float(metadata={"description": "Share of the tool's calls, 0-1"})


class CountryShareSchema(Schema):
    country = fields.String(metadata={"description": "ISO 3166-1 alpha-2"})
    calls = fields.Integer()
    percentage = fields.Float(metadata={"description": "Share of the tool's calls, 0-1"})


class ToolDetailSchema(Schema):
    tool = fields.String()
    period = fields.String()
    summary = fields.Nested(ToolSummarySchema)
    response_times = fields.Nested(
        ResponseTimesSchema, metadata={"description": "Added to the contract's fields: as in /v1/stats/performance"}
    )
    daily_data = fields.List(fields.Nested(DailySchema))
    versions = fields.List(fields.Nested(VersionShareSchema))
    countries = fields.List(fields.Nested(CountryShareSchema))


class ErrorsSchema(Schema):
    period = fields.String()
    errors = fields.List(fields.Nested(ErrorTypeSchema))


class PerformanceSchema(Schema):
    period = fields.String()
    response_times = fields.Nested(ResponseTimesSchema)
    cache_performance = fields.Dict(metadata={"description": "hit_rate, total_hits, total_misses"})
    service_distribution = fields.Dict(keys=fields.String(), values=fields.Integer())


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"enum": ["healthy", "unhealthy"]})
    timestamp = fields.DateTime(metadata={"description": "When healthy"})
    uptime = fields.Float(metadata={"description": "Seconds, when healthy"})
    database = fields.String(metadata={"enum": ["connected", "disconnected"], "description": "When unhealthy"})
    writer = fields.String(metadata={"enum": ["failing", "stopped"], "description": "When the writer is the problem"})


class StatusSchema(Schema):
    status = fields.String()
    timestamp = fields.DateTime()
    uptime_seconds = fields.Integer()
    database = fields.Dict()
    queue = fields.Dict(metadata={"description": "depth: events accepted and not yet committed"})
    memory = fields.Dict(metadata={"description": "used_mb (resident), total_mb (machine)"})


PERIOD = {
    "name": "period",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "enum": list(PERIODS), "default": DEFAULT_PERIOD},
    "description": "Days back from today (UTC), plus today",
}
RATE_LIMITED = {"429": "Rate limit exceeded: 60 requests a minute per address; see retry_after"}
TELEMETRY, STATS, SERVICE = "Telemetry (/v1)", "Stats (/v1)", "Service"


def _op(summary: str, tag: str, ok: str, answer: str, errors: dict[str, str], **extra: Any) -> dict[str, Any]:
    return operation(summary, tag, ok, answer, errors, security=PUBLIC, error_schema="Error", **extra)


def _stats(summary: str, answer: str, errors: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "get": _op(
            summary,
            STATS,
            f"200 {summary}",
            answer,
            {"400": "Bad period", **RATE_LIMITED, **(errors or {})},
            parameters=[PERIOD],
        )
    }


PATHS: dict[str, dict[str, Any]] = {
    "/v1/events": {
        "post": _op(
            "Submit a batch of 1-100 tool-call events (body at most 100 KB)",
            TELEMETRY,
            "200 Events accepted (committed, with the default ack = commit)",
            "Accepted",
            {
                "400": "Validation failed: details lists every problem",
                "413": "Body larger than 100 KB",
                **RATE_LIMITED,
                "503": "Queue full or commit too slow; see retry_after and Retry-After",
            },
            body="EventBatch",
            parameters=[
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY},
                    "description": "A retry with the same key within 24 h gets the first answer "
                    "and is not counted twice",
                }
            ],
        )
    },
    "/v1/stats/overview": _stats("Summary across all tools", "Overview"),
    "/v1/stats/tools": _stats("Statistics of every tool", "Tools"),
    "/v1/stats/tool/{tool_name}": {
        **_stats(
            "Daily series, versions and countries of one tool",
            "ToolDetail",
            {"404": "Unknown tool, or no data in the period"},
        ),
        "parameters": [{"name": "tool_name", "in": "path", "required": True, "schema": {"type": "string"}}],
    },
    "/v1/stats/errors": _stats("Error types, counts and last seen", "Errors"),
    "/v1/stats/performance": _stats("Response-time percentiles, cache and services", "Performance"),
    "/v1/health": {
        "get": _op(
            "Health check (not rate limited)",
            SERVICE,
            "200 Healthy",
            "Health",
            {},
            responses={"503": {"description": "Unhealthy", "content": json_content("Health")}},
        )
    },
    "/v1/status": {
        "get": _op("Database, queue depth and memory", SERVICE, "200 Status", "Status", RATE_LIMITED),
    },
}


COMPONENTS: dict[str, Any] = {
    "Event": contract.EventSchema,  # before EventBatch, which nests it
    "EventBatch": contract.EventBatchSchema,
    "Accepted": AcceptedSchema,
    "Error": ErrorSchema,
    "Overview": OverviewSchema,
    "Tools": ToolsSchema,
    "ToolDetail": ToolDetailSchema,
    "Errors": ErrorsSchema,
    "Performance": PerformanceSchema,
    "Health": HealthSchema,
    "Status": StatusSchema,
}
