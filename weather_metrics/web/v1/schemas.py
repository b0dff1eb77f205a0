"""Marshmallow schemas of /v1 answers, for /openapi.json."""

from __future__ import annotations

from marshmallow import Schema, fields


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


class ShareSchema(Schema):
    version = fields.String(metadata={"description": "'version' in versions, 'country' in countries"})
    calls = fields.Integer()
    percentage = fields.Float(metadata={"description": "Share of the tool's calls, 0-1"})


class ToolDetailSchema(Schema):
    tool = fields.String()
    period = fields.String()
    summary = fields.Nested(ToolSummarySchema)
    daily_data = fields.List(fields.Nested(DailySchema))
    versions = fields.List(fields.Nested(ShareSchema))
    countries = fields.List(fields.Nested(ShareSchema))


class ErrorsSchema(Schema):
    period = fields.String()
    errors = fields.List(fields.Nested(ErrorTypeSchema))


class PerformanceSchema(Schema):
    period = fields.String()
    response_times = fields.Dict(metadata={"description": "avg_ms, p50_ms, p95_ms, p99_ms (within 5% of exact)"})
    cache_performance = fields.Dict(metadata={"description": "hit_rate, total_hits, total_misses"})
    service_distribution = fields.Dict(keys=fields.String(), values=fields.Integer())


class HealthSchema(Schema):
    status = fields.String(metadata={"enum": ["healthy", "unhealthy"]})
    timestamp = fields.DateTime()
    uptime = fields.Float()
    database = fields.String(metadata={"description": "'disconnected' when unhealthy"})


class StatusSchema(Schema):
    status = fields.String()
    timestamp = fields.DateTime()
    uptime_seconds = fields.Integer()
    database = fields.Dict()
    queue = fields.Dict(metadata={"description": "depth: events accepted and not yet committed"})
    memory = fields.Dict(metadata={"description": "used_mb (resident), total_mb (machine)"})
