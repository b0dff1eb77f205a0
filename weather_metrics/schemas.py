"""Marshmallow schemas: the documented contract of /v1 requests and responses.

EventBatchSchema states the ingestion rules; /openapi.json is generated from these
schemas. The hot path checks the same rules with weather_metrics.validation, and a
property-based test holds the two to the same verdicts and messages.
"""

from __future__ import annotations

import re
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from weather_metrics import validation as v

# Messages and patterns come from validation.py so both validators speak alike.
_REQUIRED: dict[str, Any] = {"required": v.REQUIRED, "null": v.NOT_NULL}


def _whole(pattern: re.Pattern[str]) -> re.Pattern[str]:
    return re.compile(f"(?:{pattern.pattern})\\Z")


class StrictString(fields.String):
    default_error_messages = {"invalid": v.NOT_STRING}


class StrictNumber(fields.Float):
    """A JSON number; strings and booleans are refused."""

    default_error_messages = {"invalid": v.NOT_NUMBER, "special": v.NOT_NUMBER}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, (str, bool)):
            raise self.make_error("invalid")
        if isinstance(value, int):
            return value  # exact, however large; the range check decides
        return super()._deserialize(value, attr, data, **kwargs)


class StrictInteger(fields.Integer):
    default_error_messages = {"invalid": v.NOT_INTEGER}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class StrictBoolean(fields.Boolean):
    default_error_messages = {"invalid": v.NOT_BOOLEAN}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class Parameters(fields.Dict):
    """A flat map of short scalar values with no personal data (see validation.parameter_problem)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        problems = v.parameters_problems(value)
        if isinstance(problems, dict):
            raise ValidationError({key: [message] for key, message in problems.items()})
        if problems:
            raise ValidationError(problems)
        return value


class EventList(fields.List):
    """1-100 events; the size is checked before the items."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, list):
            raise self.make_error("invalid")
        if not 1 <= len(value) <= v.MAX_EVENTS:
            raise ValidationError(v.BATCH_SIZE)
        return super()._deserialize(value, attr, data, **kwargs)


def _timestamp(value: str) -> None:
    if v.parse_timestamp(value) is None:
        raise ValidationError(v.BAD_DATE)


def _country(value: str) -> None:
    if v.normalize_country(value) is None:
        raise ValidationError(v.BAD_COUNTRY)


def _identifier(**kwargs: Any) -> StrictString:
    return StrictString(validate=validate.Regexp(_whole(v.IDENTIFIER), error=v.BAD_IDENTIFIER), **kwargs)


class StrictSchema(Schema):
    error_messages = {"unknown": v.UNKNOWN, "type": v.NOT_OBJECT}

    class Meta:
        unknown = RAISE


class EventSchema(StrictSchema):
    """One tool call. Never personal data: the service refuses what looks like it."""

    version = StrictString(
        required=True,
        error_messages=_REQUIRED,
        validate=validate.Regexp(_whole(v.SEMVER), error=v.BAD_VERSION),
        metadata={"description": "MCP server version (semver)", "example": "1.0.0"},
    )
    tool = _identifier(
        required=True,
        error_messages=_REQUIRED,
        metadata={"description": "Tool name: lowercase letters, digits, _", "example": "get_forecast"},
    )
    status = StrictString(
        required=True,
        error_messages=_REQUIRED,
        validate=validate.OneOf(v.STATUSES, error=v.BAD_STATUS),
        metadata={"enum": list(v.STATUSES)},
    )
    timestamp_hour = StrictString(
        required=True,
        error_messages=_REQUIRED,
        validate=_timestamp,
        metadata={
            "format": "date-time",
            "description": "ISO 8601; stored truncated to the hour",
            "example": "2025-11-12T20:00:00Z",
        },
    )
    analytics_level = StrictString(
        required=True,
        error_messages=_REQUIRED,
        validate=validate.OneOf(v.LEVELS, error=v.BAD_LEVEL),
        metadata={"enum": list(v.LEVELS)},
    )
    response_time_ms = StrictNumber(
        allow_none=True, allow_nan=False, validate=validate.Range(0, v.MAX_RESPONSE_TIME_MS, error=v.BAD_RESPONSE_TIME)
    )
    service = _identifier(allow_none=True, metadata={"description": "Upstream service", "example": "noaa"})
    cache_hit = StrictBoolean(allow_none=True)
    retry_count = StrictInteger(allow_none=True, validate=validate.Range(0, v.MAX_RETRY_COUNT, error=v.BAD_RETRY_COUNT))
    country = StrictString(
        allow_none=True, validate=_country, metadata={"description": "ISO 3166-1 alpha-2 code", "example": "US"}
    )
    error_type = StrictString(
        allow_none=True,
        validate=validate.Regexp(_whole(v.ERROR_TYPE), error=v.BAD_ERROR_TYPE),
        metadata={"example": "NetworkError"},
    )
    session_id = StrictString(
        allow_none=True,
        validate=validate.Regexp(_whole(v.SESSION_ID), error=v.BAD_SESSION_ID),
        metadata={"description": "Hashed session identifier; counts toward active_installs"},
    )
    sequence_number = StrictInteger(
        allow_none=True, validate=validate.Range(0, v.MAX_SEQUENCE_NUMBER, error=v.BAD_SEQUENCE_NUMBER)
    )
    parameters = Parameters(
        allow_none=True,
        metadata={
            "description": "Flat map of at most 20 generic values; no coordinates, addresses, "
            "emails, IP addresses or names",
            "example": {"location_type": "coordinates"},
        },
    )


class EventBatchSchema(StrictSchema):
    events = EventList(
        fields.Nested(EventSchema),
        required=True,
        error_messages={**_REQUIRED, "invalid": v.NOT_ARRAY},
        metadata={"minItems": 1, "maxItems": v.MAX_EVENTS},
    )


def _flatten(messages: Any, path: str, out: dict[str, str]) -> None:
    if isinstance(messages, list):
        out[path] = messages[0]
        return
    for key, value in messages.items():
        if key == "_schema":
            sub = path or "body"
        elif isinstance(key, int):
            sub = f"{path}[{key}]"
        else:
            sub = f"{path}.{key}" if path else str(key)
        _flatten(value, sub, out)


def contract_problems(body: Any) -> dict[str, str]:
    """EventBatchSchema's verdict on a body, as {path: message} like validation.batch_problems."""
    out: dict[str, str] = {}
    _flatten(EventBatchSchema().validate(body), "", out)
    return out


# Responses (documentation only).


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
