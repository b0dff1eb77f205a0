"""Request bodies and query string of /api/alerts, as marshmallow schemas.

They check shape only; whether the fields fit together (a productivity rule needs a
metric_type, an error rate is a percentage) and whether a team exists and is the caller's
is decided by weather_metrics.alerts. Errors name nested fields by path, such as scope.id.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from weather_metrics.alerts.rules import (
    COMPARISONS,
    EVENT_STATES,
    MAX_COOLDOWN_MINUTES,
    MAX_THRESHOLD,
    MAX_WINDOW_MINUTES,
    METRICS,
    SCOPE_TYPES,
    SEVERITIES,
)
from weather_metrics.core.fields import StrictBoolean, StrictInteger, StrictNumber, StrictSchema, StrictString
from weather_metrics.core.vocabulary import BAD_METRIC_TYPE, MAX_AGENT_NAME, MAX_COMMAND, METRIC_TYPE
from weather_metrics.web.api import schemas as api_schemas
from weather_metrics.web.api.schemas import MAX_PAGE


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("Must not be blank")


def _metric_type(value: str) -> None:
    if not METRIC_TYPE.fullmatch(value):
        raise ValidationError(BAD_METRIC_TYPE)


class RuleScopeSchema(StrictSchema):
    """What a rule watches: the organization, one team (id), one agent or one tool (name)."""

    type = StrictString(required=True, validate=validate.OneOf(SCOPE_TYPES))
    id = StrictString(validate=validate.Length(1, 64), metadata={"description": "The team's id; only with type team"})
    name = StrictString(
        validate=validate.Length(1, MAX_COMMAND),
        metadata={"description": "The agent_name (type agent) or command (type tool)"},
    )

    @validates_schema
    def names_its_target(self, data: dict[str, Any], **_: object) -> None:
        kind = data.get("type")
        wanted = {"team": "id", "agent": "name", "tool": "name"}.get(str(kind))
        for key in ("id", "name"):
            if key in data and key != wanted:
                raise ValidationError(f"Not allowed for scope type {kind}", key)
        if wanted and wanted not in data:
            raise ValidationError(f"Required for scope type {kind}", wanted)
        if kind == "agent" and len(data["name"]) > MAX_AGENT_NAME:
            raise ValidationError(f"Longer than {MAX_AGENT_NAME} characters", "name")


def _flatten(messages: Any, prefix: str = "") -> dict[str, Any]:
    """{"scope": {"id": [...]}} -> {"scope.id": [...]}."""
    if not isinstance(messages, dict):
        return {prefix or "_schema": messages}
    flat: dict[str, Any] = {}
    for key, value in messages.items():
        name = prefix if key == "_schema" and prefix else f"{prefix}.{key}" if prefix else str(key)
        flat.update(_flatten(value, name))
    return flat


THRESHOLD = validate.Range(-MAX_THRESHOLD, MAX_THRESHOLD)
WINDOW = validate.Range(1, MAX_WINDOW_MINUTES)
COOLDOWN = validate.Range(0, MAX_COOLDOWN_MINUTES)
ABOUT = {
    "metric_type": {"description": "The productivity metric type (e.g. commits); required iff metric is productivity"},
    "comparison": {"description": "Fires when `value <comparison> threshold` holds"},
    "threshold": {"description": "error_rate: a percentage, 0-100; p95_latency_ms and call_volume: at least 0"},
    "window_minutes": {"description": "The trailing window measured, up to the evaluation"},
    "cooldown_minutes": {"description": "Least time between two firings of the rule"},
}


class RuleUpdateSchema(StrictSchema):
    """Any subset of a rule's fields."""

    name = StrictString(validate=[validate.Length(1, 100), _not_blank])
    metric = StrictString(validate=validate.OneOf(METRICS))
    metric_type = StrictString(allow_none=True, validate=_metric_type, metadata=ABOUT["metric_type"])
    scope = fields.Nested(RuleScopeSchema)
    comparison = StrictString(validate=validate.OneOf(tuple(COMPARISONS)), metadata=ABOUT["comparison"])
    threshold = StrictNumber(allow_nan=False, validate=THRESHOLD, metadata=ABOUT["threshold"])
    window_minutes = StrictInteger(validate=WINDOW, metadata=ABOUT["window_minutes"])
    severity = StrictString(validate=validate.OneOf(SEVERITIES))
    cooldown_minutes = StrictInteger(validate=COOLDOWN, metadata=ABOUT["cooldown_minutes"])
    enabled = StrictBoolean()

    def handle_error(self, error: ValidationError, data: Any, **kwargs: Any) -> None:
        raise ValidationError(_flatten(error.messages)) from None


class RuleCreateSchema(RuleUpdateSchema):
    name = StrictString(required=True, validate=[validate.Length(1, 100), _not_blank])
    metric = StrictString(required=True, validate=validate.OneOf(METRICS))
    scope = fields.Nested(RuleScopeSchema, required=True)
    comparison = StrictString(required=True, validate=validate.OneOf(tuple(COMPARISONS)), metadata=ABOUT["comparison"])
    threshold = StrictNumber(required=True, allow_nan=False, validate=THRESHOLD, metadata=ABOUT["threshold"])
    window_minutes = StrictInteger(required=True, validate=WINDOW, metadata=ABOUT["window_minutes"])
    severity = StrictString(required=True, validate=validate.OneOf(SEVERITIES))
    cooldown_minutes = StrictInteger(required=True, validate=COOLDOWN, metadata=ABOUT["cooldown_minutes"])
    enabled = StrictBoolean(load_default=True)


class AlertQuerySchema(api_schemas.StrictSchema):
    state = fields.String(validate=validate.OneOf(EVENT_STATES))
    rule_id = fields.String(validate=validate.Length(1, 64))
    severity = fields.String(validate=validate.OneOf(SEVERITIES))
    page = fields.Integer(load_default=1, validate=validate.Range(1, MAX_PAGE))
    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))


# Answers, for /openapi.json: what weather_metrics.alerts.rules' views return.
class ScopeViewSchema(Schema):
    type = fields.String(required=True, validate=validate.OneOf(SCOPE_TYPES))
    id = fields.String(metadata={"description": "The team's id (type team)"})
    name = fields.String(metadata={"description": "The agent_name (type agent) or command (type tool)"})


class RuleSchema(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    metric = fields.String(required=True, validate=validate.OneOf(METRICS))
    metric_type = fields.String(required=True, allow_none=True)
    scope = fields.Nested(ScopeViewSchema, required=True)
    comparison = fields.String(required=True, validate=validate.OneOf(tuple(COMPARISONS)))
    threshold = fields.Float(required=True)
    window_minutes = fields.Integer(required=True)
    severity = fields.String(required=True, validate=validate.OneOf(SEVERITIES))
    cooldown_minutes = fields.Integer(required=True)
    enabled = fields.Boolean(required=True)
    state = fields.String(required=True, validate=validate.OneOf(("ok", "firing")))
    last_value = fields.Float(required=True, allow_none=True, metadata={"description": "At the last evaluation"})
    last_fired_at = fields.DateTime(required=True, allow_none=True)
    next_evaluation_at = fields.DateTime(required=True, allow_none=True, metadata={"description": "null if disabled"})
    created_by = fields.String(required=True, allow_none=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class RulesSchema(Schema):
    rules = fields.List(fields.Nested(RuleSchema), required=True)


class AlertSchema(Schema):
    """One firing of a rule; it outlives the rule."""

    id = fields.String(required=True)
    rule_id = fields.String(required=True)
    rule_name = fields.String(required=True)
    severity = fields.String(required=True, validate=validate.OneOf(SEVERITIES))
    metric = fields.String(required=True, validate=validate.OneOf(METRICS))
    scope = fields.Nested(ScopeViewSchema, required=True)
    state = fields.String(required=True, validate=validate.OneOf(EVENT_STATES))
    metric_value = fields.Float(required=True)
    threshold = fields.Float(required=True)
    affected_users = fields.List(fields.String(), required=True)
    fired_at = fields.DateTime(required=True)
    resolved_at = fields.DateTime(required=True, allow_none=True)
    resolved_value = fields.Float(
        required=True, allow_none=True, metadata={"description": "null when resolved by a change of the rule"}
    )


class AlertsSchema(Schema):
    alerts = fields.List(fields.Nested(AlertSchema), required=True)
    pagination = fields.Nested(api_schemas.PageSchema, required=True)
