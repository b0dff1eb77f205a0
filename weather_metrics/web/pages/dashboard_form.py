"""The dashboard forms of the pages: their fields read into the bodies POST and PUT /api/dashboards take, checked by
the API's own schemas, and each problem the API names by path (filters.range) put beside its field.

A form that changes a dashboard carries the version of what it was built from (a hash of the dashboard's details, or
of one widget); when that changed meanwhile (another tab, another person), the change is refused as Stale rather than
written over it. Widgets: widget_form.py.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from marshmallow import Schema, ValidationError
from werkzeug.datastructures import MultiDict

from weather_metrics.core.vocabulary import AGGREGATIONS
from weather_metrics.dashboards import RANGES, WIDGET_TYPES
from weather_metrics.web.api.dashboard_schemas import DashboardCreateSchema, DashboardUpdateSchema

MAX_FIELD = 1000  # longer than any field the schemas accept: kept to this on the page sent back
NEW_FIELDS = ("name", "description", "scope", "team_id")
DETAIL_FIELDS = ("name", "description")
FILTER_KEYS = ("range", "start_date", "end_date", "aggregation", "agent_name", "user_id", "team_id", "success_only")
TYPE_NAMES = {"line": "Line chart", "bar": "Bar chart", "area": "Area chart", "pie": "Pie chart by agent"}
TYPE_NAMES.update(number="Single number", table="Table")
RANGE_NAMES = {key: f"Last {key}" for key in RANGES}
AGGREGATION_NAMES = {key: f"By {key}" for key in AGGREGATIONS}
SUCCESS_NAMES = {"true": "Successful calls only", "false": "Every call"}
# What an empty filter field means: on a widget, the dashboard's filter; on the dashboard, the API's default.
WIDGET_BLANKS = dict.fromkeys(("range", "aggregation", "success_only", "team_id", "user_id"), "The dashboard's")
BOARD_BLANKS = {"range": "Last 7d, or the dates below", "aggregation": "By day", "success_only": "Every call"}
BOARD_BLANKS.update(team_id="Every team you see", user_id="Everyone you see")
assert set(TYPE_NAMES) == set(WIDGET_TYPES)


@dataclass
class Form:
    """What a form shows: the values as typed, and a problem per field ("_form" above it)."""

    values: dict[str, Any]
    problems: dict[str, str] = field(default_factory=dict)


@dataclass
class LayoutForm:
    """The dashboard's widgets as rows of title and x, y, w, h; `rows` keep each widget's id, type and metric."""

    rows: list[dict[str, Any]]
    problems: dict[str, str] = field(default_factory=dict)


def _typed(form: MultiDict[str, str], names: tuple[str, ...], prefix: str = "") -> dict[str, str]:
    return {name: form.get(prefix + name, "")[:MAX_FIELD] for name in names}


def _number(text: str) -> int | str:
    """A typed whole number as the JSON number it names; anything else stays text, which the schema refuses."""
    try:
        return int(text.strip())
    except ValueError:
        return text


def _sentence(message: Any) -> str:
    text = message[0] if isinstance(message, list) and message else message
    return str(text).rstrip(".") + "." if isinstance(text, str) else "Not valid."


def _load(schema: Schema, body: dict[str, Any], name_of: Any) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """The body as the API's schema loads it, or None and each problem by the form field `name_of(path)` gives."""
    try:
        return schema.load(body), {}
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_form": exc.messages}
        return None, shown(messages, name_of)


def shown(messages: dict[str, Any], name_of: Any) -> dict[str, str]:
    """The API's messages by path as one sentence per form field; a path no field shows goes above the form."""
    problems: dict[str, str] = {}
    for path, message in messages.items():
        problems.setdefault(name_of(str(path)) or "_form", _sentence(message))
    return problems


class Stale(Exception):
    """The form was built from a dashboard or widget that changed since: nothing is written; says what changed."""


def version(value: Any) -> str:
    """What a form carries of the dashboard or widget it was built from: equal only while that is unchanged."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def filter_values(filters: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Stored filters as form fields: every key, empty when not set; success_only as "true" or "false"."""
    values = {}
    for key in FILTER_KEYS:
        value = filters.get(key, "")
        values[prefix + key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return values


def filters_body(values: dict[str, str], prefix: str = "") -> dict[str, Any]:
    """The filters object the API takes: an empty field is not set; anything else goes to the schema as typed."""
    body: dict[str, Any] = {}
    for key in FILTER_KEYS:
        text = values.get(prefix + key, "")
        if text.strip() != "":
            body[key] = {"true": True, "false": False}.get(text, text) if key == "success_only" else text
    return body


# A new dashboard: name, description, scope and its team.
def blank_new() -> Form:
    return Form({"name": "", "description": "", "scope": "user", "team_id": ""})


def sent_new(form: MultiDict[str, str]) -> Form:
    return Form(_typed(form, NEW_FIELDS))


def checked_new(form: Form) -> dict[str, Any] | None:
    """The body POST /api/dashboards would load from the form; None with form.problems filled when refused."""
    values = form.values
    body: dict[str, Any] = {"name": values["name"], "description": values["description"], "scope": values["scope"]}
    if values["team_id"] != "" or values["scope"] == "team":  # a team chosen beside another scope is refused
        body["team_id"] = values["team_id"] or None
    loaded, form.problems = _load(DashboardCreateSchema(), body, lambda path: path if path in NEW_FIELDS else None)
    return loaded


# Name, description, whether it is the default and the dashboard's filters, of a dashboard being edited.
BOARD_FIELDS = (*DETAIL_FIELDS, "is_default", "version", *(f"filter-{key}" for key in FILTER_KEYS))


def details_version(board: dict[str, Any]) -> str:
    return version({key: board[key] for key in ("name", "description", "is_default", "filters")})


def details_of(board: dict[str, Any]) -> Form:
    values = {name: board[name] for name in DETAIL_FIELDS}
    values.update(is_default="1" if board["is_default"] else "", version=details_version(board))
    return Form({**values, **filter_values(board["filters"], "filter-")})


def sent_details(form: MultiDict[str, str]) -> Form:
    return Form(_typed(form, BOARD_FIELDS))


def _details_field(path: str) -> str | None:
    """name -> name; filters.range -> filter-range; filters -> filter-range."""
    if path in (*DETAIL_FIELDS, "is_default"):
        return path
    parts = path.split(".")
    if parts[0] != "filters":
        return None
    return "filter-" + (parts[1] if len(parts) > 1 and parts[1] in FILTER_KEYS else "range")


def checked_details(form: Form) -> dict[str, Any] | None:
    """The body PUT /api/dashboards/<id> would load from the form; None with form.problems filled when refused."""
    values = form.values
    body = {name: values[name] for name in DETAIL_FIELDS}
    body.update(is_default=values["is_default"] != "", filters=filters_body(values, "filter-"))
    loaded, form.problems = _load(DashboardUpdateSchema(), body, _details_field)
    return loaded


def check_details_version(form: Form, board: dict[str, Any]) -> None:
    """Stale when the name, description, default or filters changed since the form was built."""
    if form.values["version"] != details_version(board):
        raise Stale("the name, description, default or filters were changed")
