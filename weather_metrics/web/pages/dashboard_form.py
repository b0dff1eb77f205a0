"""The dashboard forms of the pages: their fields read into the bodies POST and PUT /api/dashboards take, checked by
the API's own schemas, and each problem the API names by path (layout.2.position.x) put beside its field.
"""

from __future__ import annotations

import uuid
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
WIDGET_FIELDS = ("type", "metric", "title", "range", "aggregation", "x", "y", "w", "h")
PLACE = ("x", "y", "w", "h")
TYPE_NAMES = {"line": "Line chart", "bar": "Bar chart", "area": "Area chart", "pie": "Pie chart by agent"}
TYPE_NAMES.update(number="Single number", table="Table")
RANGE_NAMES = {"": "The dashboard's (7 days unless set)", **{key: f"Last {key}" for key in RANGES}}
AGGREGATION_NAMES = {"": "The dashboard's (by day unless set)", **{key: f"By {key}" for key in AGGREGATIONS}}
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


# Name and description of a dashboard being edited.
def details_of(board: dict[str, Any]) -> Form:
    return Form({name: board[name] for name in DETAIL_FIELDS})


def sent_details(form: MultiDict[str, str]) -> Form:
    return Form(_typed(form, DETAIL_FIELDS))


def checked_details(form: Form) -> dict[str, Any] | None:
    """The body PUT /api/dashboards/<id> would load from the form; None with form.problems filled when refused."""
    body = dict(form.values)
    loaded, form.problems = _load(DashboardUpdateSchema(), body, lambda path: path if path in DETAIL_FIELDS else None)
    return loaded


# The layout: each widget's title and place, by row.
def layout_of(layout: list[dict[str, Any]]) -> LayoutForm:
    rows = [{**w, "title": w.get("title", ""), **{k: str(w["position"][k]) for k in PLACE}} for w in layout]
    return LayoutForm(rows)


def sent_layout(form: MultiDict[str, str], layout: list[dict[str, Any]]) -> LayoutForm:
    """The stored widgets with the title and place typed in their rows (by widget id: rows of widgets gone are not)."""
    typed = {form.get(f"layout-{i}-id", ""): i for i in range(len(layout) + 50) if f"layout-{i}-id" in form}
    rows = []
    for widget in layout:
        if widget["id"] not in typed:
            rows.append(layout_of([widget]).rows[0])
            continue
        row = _typed(form, ("title", *PLACE), f"layout-{typed[widget['id']]}-")
        rows.append({**widget, **row})
    return LayoutForm(rows)


def _row_field(path: str, prefix: str) -> str | None:
    """layout.2.position.x -> layout-2-x; layout.2.title -> layout-2-title; layout.2 -> layout-2-x."""
    parts = path.split(".")
    if len(parts) < 2 or parts[0] != "layout" or not parts[1].isdigit():
        return None
    name = parts[-1] if len(parts) > 2 else "x"
    return f"{prefix}{parts[1]}-{'x' if name == 'position' else name}"


def _widget(row: dict[str, Any]) -> dict[str, Any]:
    """A row back as the widget the API stores; an emptied place field is left out (Required)."""
    widget: dict[str, Any] = {key: row[key] for key in ("id", "type", "metric", "filters") if key in row}
    widget["title"] = row["title"]
    widget["position"] = {k: _number(row[k]) for k in PLACE if row[k].strip() != ""}
    return widget


def layout_body(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [_widget(row) for row in rows]


def checked_layout(form: LayoutForm) -> dict[str, Any] | None:
    """{"layout": [...]} as PUT /api/dashboards/<id> loads it; None with form.problems filled when refused."""
    body = {"layout": layout_body(form.rows)}
    loaded, form.problems = _load(DashboardUpdateSchema(), body, lambda path: _row_field(path, "layout-"))
    return loaded


def layout_problems(form: LayoutForm, details: dict[str, Any], message: str) -> LayoutForm:
    form.problems = shown(details, lambda path: _row_field(path, "layout-")) if details else {"_form": message}
    return form


# A widget to add.
def blank_widget(layout: list[dict[str, Any]]) -> Form:
    """A line chart of calls, half the width, below every widget."""
    below = max((w["position"]["y"] + w["position"]["h"] for w in layout), default=0)
    values = {"type": "line", "metric": "agents.calls", "title": "", "range": "", "aggregation": ""}
    values.update(x="0", y=str(below), w="6", h="4")
    return Form(values)


def sent_widget(form: MultiDict[str, str]) -> Form:
    return Form(_typed(form, WIDGET_FIELDS, "add-"))


def _new_widget(values: dict[str, str]) -> dict[str, Any]:
    filters = {key: values[key] for key in ("range", "aggregation") if values[key] != ""}
    widget: dict[str, Any] = {"id": uuid.uuid4().hex[:12], "type": values["type"], "metric": values["metric"]}
    widget.update(title=values["title"], filters=filters)
    widget["position"] = {k: _number(values[k]) for k in PLACE if values[k].strip() != ""}
    return widget


def _added_field(path: str, index: int) -> str | None:
    """The add form's field for layout.<index>.filters.range and the like; other widgets' paths show above it."""
    parts = path.split(".")
    if parts[:2] != ["layout", str(index)]:
        return None
    return "add-" + (parts[-1] if len(parts) > 2 else "type")


def checked_widget(form: Form, layout: list[dict[str, Any]]) -> dict[str, Any] | None:
    """{"layout": stored + the new widget} as PUT /api/dashboards/<id> loads it; None with form.problems filled."""
    body = {"layout": [*layout, _new_widget(form.values)]}
    loaded, form.problems = _load(DashboardUpdateSchema(), body, lambda path: _added_field(path, len(layout)))
    return loaded


def widget_problems(form: Form, details: dict[str, Any], message: str, index: int) -> Form:
    form.problems = shown(details, lambda path: _added_field(path, index)) if details else {"_form": message}
    return form
