"""Request bodies and query string of /api/dashboards, as marshmallow schemas.

They check shape only; whether a metric or team exists in the caller's organization is
decided by weather_metrics.dashboards.
"""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from weather_metrics.core.fields import NOT_ARRAY, StrictBoolean, StrictInteger, StrictSchema, StrictString
from weather_metrics.core.vocabulary import AGGREGATIONS
from weather_metrics.dashboards import RANGES, SCOPES, WIDGET_TYPES
from weather_metrics.query.windows import BAD_MOMENT, is_moment

GRID_COLUMNS = 12
MAX_WIDGETS = 50
MAX_ROWS = 10_000  # far below anything a screen shows; keeps positions small numbers
ID = validate.Length(1, 64)


def _iso_moment(value: str) -> None:
    if not is_moment(value):  # the same rule as the metrics queries, so saved filters always work
        raise ValidationError(BAD_MOMENT)


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("Must not be blank")


class DashboardFiltersSchema(StrictSchema):
    """Filters of a dashboard or widget; a widget's win over its dashboard's."""

    start_date = StrictString(validate=[validate.Length(max=40), _iso_moment])
    end_date = StrictString(validate=[validate.Length(max=40), _iso_moment])
    range = StrictString(validate=validate.OneOf(list(RANGES)), metadata={"description": "Instead of dates"})
    aggregation = StrictString(validate=validate.OneOf(AGGREGATIONS))
    agent_name = StrictString(validate=validate.Length(1, 128))
    user_id = StrictString(validate=ID)
    team_id = StrictString(validate=ID)
    success_only = StrictBoolean()

    @validates_schema
    def range_or_dates(self, data: dict[str, Any], **_: object) -> None:
        if "range" in data and ("start_date" in data or "end_date" in data):
            raise ValidationError("Use either range or start_date/end_date", "range")


class WidgetPositionSchema(StrictSchema):
    """A place on a 12-column grid."""

    x = StrictInteger(required=True, validate=validate.Range(0, GRID_COLUMNS - 1))
    y = StrictInteger(required=True, validate=validate.Range(0, MAX_ROWS))
    w = StrictInteger(required=True, validate=validate.Range(1, GRID_COLUMNS))
    h = StrictInteger(required=True, validate=validate.Range(1, 24))

    @validates_schema
    def inside_grid(self, data: dict[str, Any], **_: object) -> None:
        if data["x"] + data["w"] > GRID_COLUMNS:
            raise ValidationError(f"x + w must not exceed {GRID_COLUMNS}", "w")


class DashboardWidgetSchema(StrictSchema):
    id = StrictString(required=True, validate=ID)
    type = StrictString(required=True, validate=validate.OneOf(WIDGET_TYPES))
    title = StrictString(load_default="", validate=validate.Length(max=100))
    metric = StrictString(
        required=True,
        validate=validate.Length(1, 100),
        metadata={
            "description": "agents.<calls|successes|failures|success_rate|..._duration_ms> or productivity.<type>"
        },
    )
    filters = fields.Nested(DashboardFiltersSchema, load_default=dict)
    position = fields.Nested(WidgetPositionSchema, required=True)


class WidgetList(fields.List):
    """At most MAX_WIDGETS widgets; the count is checked before the widgets."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, list):
            raise ValidationError(NOT_ARRAY)
        if len(value) > MAX_WIDGETS:
            raise ValidationError(f"At most {MAX_WIDGETS} widgets")
        return super()._deserialize(value, attr, data, **kwargs)


def _flatten(messages: Any, prefix: str = "") -> dict[str, Any]:
    """{"layout": {2: {"metric": [...]}}} -> {"layout.2.metric": [...]}."""
    if not isinstance(messages, dict):
        return {prefix or "_schema": messages}
    flat: dict[str, Any] = {}
    for key, value in messages.items():
        if key == "_schema" and prefix:  # "layout.0" is not an object: name the item itself
            flat[prefix] = value
        else:
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


class DashboardUpdateSchema(StrictSchema):
    """Any subset of a dashboard's fields; errors name fields by path, such as layout.2.metric."""

    name = StrictString(validate=[validate.Length(1, 100), _not_blank])
    description = StrictString(validate=validate.Length(max=500))
    scope = StrictString(validate=validate.OneOf(SCOPES))
    team_id = StrictString(allow_none=True, validate=ID, metadata={"description": "Required iff scope is team"})
    layout = WidgetList(fields.Nested(DashboardWidgetSchema), metadata={"maxItems": MAX_WIDGETS})
    filters = fields.Nested(DashboardFiltersSchema)
    is_default = StrictBoolean(metadata={"description": "One default per owner, team or organization"})

    @validates_schema
    def unique_widget_ids(self, data: dict[str, Any], **_: object) -> None:
        seen: set[str] = set()
        for i, widget in enumerate(data.get("layout", [])):
            if widget["id"] in seen:
                raise ValidationError("Duplicate widget id", f"layout.{i}.id")
            seen.add(widget["id"])

    def handle_error(self, error: ValidationError, data: Any, **kwargs: Any) -> None:
        raise ValidationError(_flatten(error.messages)) from None


class DashboardCreateSchema(DashboardUpdateSchema):
    name = StrictString(required=True, validate=[validate.Length(1, 100), _not_blank])
    description = StrictString(load_default="", validate=validate.Length(max=500))
    scope = StrictString(load_default="user", validate=validate.OneOf(SCOPES))
    layout = WidgetList(fields.Nested(DashboardWidgetSchema), load_default=list, metadata={"maxItems": MAX_WIDGETS})
    filters = fields.Nested(DashboardFiltersSchema, load_default=dict)
    is_default = StrictBoolean(load_default=False)


class DashboardQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    scope = fields.String(validate=validate.OneOf(SCOPES))
    default_only = fields.Boolean(load_default=False, truthy={"true", "1"}, falsy={"false", "0"})


# Answers, for /openapi.json: what weather_metrics.dashboards' views return.
class DashboardSchema(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    description = fields.String(required=True)
    scope = fields.String(required=True, validate=validate.OneOf(SCOPES))
    team_id = fields.String(required=True, allow_none=True, metadata={"description": "Set iff scope is team"})
    owner_id = fields.String(required=True)
    layout = fields.List(fields.Nested(DashboardWidgetSchema), required=True)
    filters = fields.Nested(DashboardFiltersSchema, required=True)
    is_default = fields.Boolean(required=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class DashboardsSchema(Schema):
    dashboards = fields.List(fields.Nested(DashboardSchema), required=True)


class WidgetPointSchema(Schema):
    period = fields.String(required=True, metadata={"description": "Local start of the period, with its UTC offset"})
    value = fields.Float(required=True, allow_none=True)


class AgentValueSchema(Schema):
    agent_name = fields.String(required=True)
    value = fields.Float(required=True, allow_none=True)


class WidgetTotalsSchema(Schema):
    samples = fields.Integer(required=True)
    sum = fields.Float(required=True)
    avg = fields.Float(required=True, allow_none=True)
    min = fields.Float(required=True, allow_none=True)
    max = fields.Float(required=True, allow_none=True)


class WidgetFiguresSchema(Schema):
    """An agents.* metric has value, series_metric and agents; a productivity.* metric has totals."""

    window = fields.Dict(required=True, metadata={"description": "As in GET /api/metrics/agents"})
    series = fields.List(fields.Nested(WidgetPointSchema), required=True, metadata={"description": "Every period"})
    value = fields.Float(allow_none=True, metadata={"description": "The metric over the whole window"})
    series_metric = fields.String(metadata={"description": "What the series counts (calls, for percentiles)"})
    agents = fields.List(fields.Nested(AgentValueSchema))
    totals = fields.Nested(WidgetTotalsSchema)


class WidgetErrorSchema(Schema):
    status = fields.Integer(required=True, metadata={"enum": [400, 403, 404]})
    message = fields.String(required=True)
    details = fields.Dict(required=True)


class WidgetDataSchema(Schema):
    id = fields.String(required=True)
    type = fields.String(required=True, validate=validate.OneOf(WIDGET_TYPES))
    metric = fields.String(required=True)
    data = fields.Nested(WidgetFiguresSchema, metadata={"description": "Unless error"})
    error = fields.Nested(WidgetErrorSchema, metadata={"description": "Why this widget has no data for you"})


class DashboardDataSchema(Schema):
    dashboard = fields.Nested(DashboardSchema, required=True)
    widgets = fields.List(fields.Nested(WidgetDataSchema), required=True)
