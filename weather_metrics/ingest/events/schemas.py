"""Marshmallow schemas: the documented contract of /v1 requests (web/v1/schemas.py has the answers).

EventBatchSchema states the ingestion rules; /openapi.json is generated from these
schemas. The hot path checks the same rules with ingest/events/validation.py, and a
property-based test holds the two to the same verdicts and messages.
"""

from __future__ import annotations

import re
from typing import Any

from marshmallow import ValidationError, fields, validate

from weather_metrics.core.fields import StrictBoolean, StrictInteger, StrictNumber, StrictSchema, StrictString
from weather_metrics.ingest.events import parameters as p
from weather_metrics.ingest.events import validation as v

# Messages and patterns come from validation.py and parameters.py so both validators speak alike.
_REQUIRED: dict[str, Any] = {"required": v.REQUIRED, "null": v.NOT_NULL}


def _whole(pattern: re.Pattern[str]) -> re.Pattern[str]:
    return re.compile(f"(?:{pattern.pattern})\\Z")


def _documented(pattern: re.Pattern[str]) -> str:
    """The same rule for /openapi.json, whose patterns are ECMA-262: no \\Z there, and $ ends the string."""
    return f"^(?:{pattern.pattern})$"


class Parameters(fields.Dict):
    """A flat map of categorical values, never personal data (the rule is in ingest/events/parameters.py)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        problems = p.parameters_problems(value)
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


def _identifier(metadata: dict[str, Any], **kwargs: Any) -> StrictString:
    return StrictString(
        validate=validate.Regexp(_whole(v.IDENTIFIER), error=v.BAD_IDENTIFIER),
        metadata={**metadata, "pattern": _documented(v.IDENTIFIER)},
        **kwargs,
    )


class EventSchema(StrictSchema):
    """One tool call. Never personal data: parameters hold only categorical values."""

    version = StrictString(
        required=True,
        error_messages=_REQUIRED,
        validate=validate.Regexp(_whole(v.SEMVER), error=v.BAD_VERSION),
        metadata={"description": "MCP server version (semver)", "example": "1.0.0", "pattern": _documented(v.SEMVER)},
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
        metadata={"example": "NetworkError", "pattern": _documented(v.ERROR_TYPE)},
    )
    session_id = StrictString(
        allow_none=True,
        validate=validate.Regexp(_whole(v.SESSION_ID), error=v.BAD_SESSION_ID),
        metadata={
            "description": "Hashed session identifier; counts toward active_installs",
            "pattern": _documented(v.SESSION_ID),
        },
    )
    sequence_number = StrictInteger(
        allow_none=True, validate=validate.Range(0, v.MAX_SEQUENCE_NUMBER, error=v.BAD_SEQUENCE_NUMBER)
    )
    parameters = Parameters(
        allow_none=True,
        metadata={
            "description": "Categorical breakdown of the call, never personal data. "
            f"At most {p.MAX_PARAMETERS} keys: lowercase snake_case names (a-z and '_', starting with a letter, "
            f"1-{p.MAX_KEY_LENGTH} characters), none with a word naming location, contact or identity data "
            f"unless the last word is {', '.join(p.CATEGORY_WORDS[:-1])} or {p.CATEGORY_WORDS[-1]}. "
            f"Values: boolean, null, an integer from {p.MIN_INTEGER} to {p.MAX_INTEGER}, or a lowercase word token "
            f"(a-z and '_', starting with a letter, 1-{p.MAX_TOKEN_LENGTH} characters)",
            "maxProperties": p.MAX_PARAMETERS,
            "additionalProperties": {
                "oneOf": [
                    {"type": "boolean", "nullable": True},
                    {"type": "integer", "minimum": p.MIN_INTEGER, "maximum": p.MAX_INTEGER},
                    {"type": "string", "pattern": f"^{p.WORD_TOKEN.pattern}$"},
                ],
            },
            "example": {"location_type": "coordinates", "days": 7, "include_alerts": True},
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
