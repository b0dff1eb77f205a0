"""Agent executions and productivity metrics as marshmallow schemas: the documented contract.

The hot path checks the same rules in plain Python (ingest/org/validation.py: agent_problems and
productivity_problems), and tests/test_org_validation_equivalence.py holds both to the same
verdicts and messages. Whether a timestamp is too new or too old depends on the clock, so
these schemas check only its format.
"""

from __future__ import annotations

import re
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from weather_metrics.core import vocabulary
from weather_metrics.core.fields import StrictBoolean, StrictNumber, StrictString
from weather_metrics.core.times import parse_timestamp
from weather_metrics.ingest.idempotency import MAX_IDEMPOTENCY_KEY
from weather_metrics.ingest.org import validation as o
from weather_metrics.web.openapi import json_content, operation, ref

# The hot path treats null like a missing field.
_REQUIRED: dict[str, Any] = {"required": o.REQUIRED, "null": o.REQUIRED}
_CONTROL = re.compile(f"[{o.CONTROL_CHARACTERS}]")
NO_CONTROL_CHARACTERS = f"^[^{o.CONTROL_CHARACTERS}]*$"  # the same rule as an OpenAPI pattern


class Text(validate.Length):
    """low-high characters, none of them a control character; one message, the first that applies."""

    def __init__(self, low: int, high: int) -> None:
        super().__init__(low, high, error=o.length_message(low, high))

    def __call__(self, value: Any) -> Any:
        super().__call__(value)
        if _CONTROL.search(value):
            raise ValidationError(o.BAD_TEXT)
        return value


class FiniteNumber(StrictNumber):
    """A JSON number that is not NaN or infinite; strings and booleans are refused."""

    default_error_messages = {"invalid": o.NOT_NUMBER, "special": o.NOT_NUMBER}


class RealBoolean(StrictBoolean):
    default_error_messages = {"invalid": o.NOT_BOOLEAN}


class MetricType(StrictString):
    """A string matching vocabulary.METRIC_TYPE; anything else gets the one message."""

    # Raised directly: marshmallow would str.format() the message, and it holds braces.
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, str) or not o.METRIC_TYPE.fullmatch(value):
            raise ValidationError(o.BAD_METRIC_TYPE)
        return value


def _text(low: int, high: int, description: str, required: bool = False) -> fields.String:
    return StrictString(
        required=required,
        allow_none=not required,
        validate=Text(low, high),
        error_messages={"invalid": o.NOT_STRING, **(_REQUIRED if required else {})},
        metadata={"description": description, "pattern": NO_CONTROL_CHARACTERS},
    )


def _iso_timestamp(value: str) -> None:
    if parse_timestamp(value) is None:
        raise ValidationError(o.NOT_TIMESTAMP)


def _small_metadata(value: dict[str, Any]) -> None:
    if o.metadata_size(value) > o.MAX_METADATA_BYTES:
        raise ValidationError(o.TOO_MUCH_METADATA)


def _timestamp(description: str) -> fields.String:
    return StrictString(
        required=True,
        validate=_iso_timestamp,
        error_messages={**_REQUIRED, "invalid": o.NOT_TIMESTAMP},
        metadata={"format": "date-time", "description": description, "example": "2026-03-02T14:05:00Z"},
    )


def _metadata(description: str) -> fields.Dict:
    return fields.Dict(
        allow_none=True,
        validate=_small_metadata,
        error_messages={"invalid": o.NOT_OBJECT},
        metadata={"description": f"{description}; at most {o.MAX_METADATA_BYTES} bytes as compact UTF-8 JSON"},
    )


def _range(low: float, high: float) -> validate.Range:
    return validate.Range(low, high, error=o.range_message(low, high))


class OrgItemSchema(Schema):
    error_messages = {"unknown": o.UNKNOWN, "type": o.NOT_OBJECT}

    class Meta:
        unknown = RAISE


class AgentExecutionSchema(OrgItemSchema):
    """One run of an AI agent command (/mcp/metrics/collect, POST /api/metrics/agents)."""

    session_id = _text(1, o.MAX_SESSION_ID, "The sender's session, to group executions")
    user_identifier = _text(
        1, o.MAX_IDENTIFIER, "Who ran it, as a user id or email of the organization; unmatched ones are kept unowned"
    )
    user_id = _text(1, o.MAX_IDENTIFIER, "Who ran it: a user id of the organization (must exist)")
    agent_name = _text(1, o.MAX_AGENT_NAME, "The agent that ran", required=True)
    command = _text(1, o.MAX_COMMAND, "The command or prompt it ran", required=True)
    execution_time_ms = FiniteNumber(
        required=True,
        validate=_range(0, o.MAX_EXECUTION_MS),
        error_messages=_REQUIRED,
        metadata={"description": "How long it ran, in milliseconds (at most one day)", "example": 1250},
    )
    success = RealBoolean(
        required=True,
        error_messages=_REQUIRED,
        metadata={"description": "Whether it succeeded: true or false, not a string or number"},
    )
    error_details = _text(0, o.MAX_ERROR_DETAILS, "What went wrong, when it failed")
    metadata = _metadata("Any further details, as a JSON object")
    timestamp = _timestamp(
        "When it ran, ISO 8601 (no zone means UTC); at most the clock skew ahead, within the retention period"
    )


class ProductivityMetricSchema(OrgItemSchema):
    """One measurement of a productivity metric (POST /api/metrics/productivity)."""

    timestamp = _timestamp(
        "When it was measured, ISO 8601 (no zone means UTC); at most the clock skew ahead, within the retention period"
    )
    type = MetricType(
        required=True,
        error_messages=_REQUIRED,
        metadata={
            "description": "The metric: one of the standard types or your own",
            "pattern": f"^{o.METRIC_TYPE.pattern}$",
            "example": vocabulary.STANDARD_PRODUCTIVITY_TYPES[0],
        },
    )
    value = FiniteNumber(
        required=True,
        validate=_range(-o.MAX_ABS_VALUE, o.MAX_ABS_VALUE),
        error_messages=_REQUIRED,
        metadata={"description": "The measurement", "example": 3},
    )
    user_id = _text(1, o.MAX_IDENTIFIER, "Whose it is: a user id of the organization (must exist)")
    team_id = _text(1, o.MAX_IDENTIFIER, "The team it belongs to (must exist, and be yours unless you are an admin)")
    metadata = _metadata("Any further details, as a JSON object")


class IngestAnswerSchema(Schema):
    """The answer to a stored batch; a resend with the same Idempotency-Key gets the first answer again."""

    status = fields.String(
        required=True,
        validate=validate.OneOf(("accepted", "pending")),
        metadata={"description": "pending (202): being committed; resend with the same Idempotency-Key to learn more"},
    )
    batch_id = fields.String(
        required=True, metadata={"description": "The batch's id, also in its metrics.collected webhook event"}
    )
    accepted = fields.Integer(required=True, metadata={"description": "Items stored"})
    received_at = fields.DateTime(required=True, metadata={"description": "When the service received the batch"})


IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY},
    "description": "Resending a batch with the same key stores it once and repeats the first answer",
}


def ingest_operation(summary: str, tag: str, item: str, security: list[dict[str, list[str]]]) -> dict[str, Any]:
    """POST of one `item` or an array of them, as every ingestion route takes it."""
    one = ref(item)
    return operation(
        summary,
        tag,
        "201 Stored (committed)",
        "IngestAnswer",
        {
            "400": "Validation failed: details names every bad field, as items[2].timestamp",
            "401": "Missing, invalid or expired credentials",
            "403": "An item names a user or team outside your scope",
            "409": "Idempotency-Key already used with another body",
            "413": "Body larger than metrics_max_body_bytes",
            "429": "Rate limit exceeded; see Retry-After",
            "503": "Queue full or writer stopped: not stored; retry after Retry-After",
        },
        body={"oneOf": [one, {"type": "array", "items": one}]},
        security=security,
        parameters=[IDEMPOTENCY_KEY],
        responses={
            "202": {
                "description": "Queued, not yet committed (setting ack = 'enqueue', or a commit still under way)",
                "content": json_content("IngestAnswer"),
            }
        },
    )


COMPONENTS: dict[str, Any] = {
    "AgentExecution": AgentExecutionSchema,
    "ProductivityMetric": ProductivityMetricSchema,
    "IngestAnswer": IngestAnswerSchema,
}
