"""The widget forms of the dashboard pages: the layout (each widget's title and place), a widget to add, one widget.

Every field the API's widget schema takes (type, metric, title, each filter, the place) is a form field; a form's
body is checked by DashboardUpdateSchema, and a problem the API names by path (layout.2.filters.range) goes beside
its field. The changes are made from the layout as stored when they are written (dashboards.change_dashboard), so
a widget added in another tab meanwhile is kept; a widget the form was built from that changed since is Stale.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import MultiDict

from weather_metrics.web.api.dashboard_schemas import MAX_WIDGETS, DashboardUpdateSchema
from weather_metrics.web.pages.dashboard_form import (
    FILTER_KEYS,
    Form,
    Stale,
    _load,
    _number,
    _typed,
    filter_values,
    filters_body,
    shown,
    version,
)

PLACE = ("x", "y", "w", "h")
WIDGET_FIELDS = ("type", "metric", "title", *FILTER_KEYS, *PLACE, "version")
ROW_FIELDS = ("id", "version", "title", *PLACE)


@dataclass
class LayoutForm:
    """The dashboard's widgets as rows of title and x, y, w, h; `rows` keep each widget's id, type and metric."""

    rows: list[dict[str, Any]]
    problems: dict[str, str] = field(default_factory=dict)


def _field_of(path: str, index: int, prefix: str) -> str | None:
    """The form field for layout.<index>.filters.range (prefix + "range") and the like; other paths show above."""
    parts = path.split(".")
    if parts[:2] != ["layout", str(index)]:
        return None
    if len(parts) == 2:
        return prefix + "type"
    name = parts[2] if parts[2] in ("type", "metric", "title", "id") else parts[-1]
    return prefix + {"position": "x", "filters": "range", "_schema": "x"}.get(name, name)


def index_of(layout: list[dict[str, Any]], widget_id: str) -> int | None:
    return next((i for i, widget in enumerate(layout) if widget["id"] == widget_id), None)


def _unchanged(layout: list[dict[str, Any]], widget_id: str, sent_version: str) -> int:
    """The stored index of the widget the form was built from; Stale when it is gone or changed since."""
    index = index_of(layout, widget_id)
    if index is None:
        raise Stale("a widget this form showed was removed")
    if sent_version != version(layout[index]):
        raise Stale(f"the widget “{layout[index].get('title') or layout[index]['metric']}” was changed")
    return index


# The layout: each widget's title and place, by row.
def layout_of(layout: list[dict[str, Any]]) -> LayoutForm:
    rows = [{**w, "title": w.get("title", ""), "version": version(w)} for w in layout]
    return LayoutForm([{**row, **{k: str(row["position"][k]) for k in PLACE}} for row in rows])


def sent_rows(form: MultiDict[str, str]) -> list[dict[str, str]]:
    """The rows as typed: layout-<i>-id, -version, -title, -x... for as many rows as a dashboard may have."""
    return [_typed(form, ROW_FIELDS, f"layout-{i}-") for i in range(MAX_WIDGETS + 1) if f"layout-{i}-id" in form]


def layout_change(rows: list[dict[str, str]], form: LayoutForm, layout: list[dict[str, Any]]) -> dict[str, Any] | None:
    """{"layout": the stored widgets with the typed titles and places} as PUT loads it; None with form.problems.

    `form` gets the stored widgets as rows, typed values over them, so a refused form shows what was typed.
    """
    typed = {row["id"]: row for row in rows}
    for row in rows:
        _unchanged(layout, row["id"], row["version"])
    form.rows = [{**row, **typed.get(row["id"], {})} for row in layout_of(layout).rows]
    body = {"layout": [_placed(widget, typed.get(widget["id"])) for widget in layout]}
    loaded, form.problems = _load(DashboardUpdateSchema(), body, _row_field)
    return loaded


def _placed(widget: dict[str, Any], row: dict[str, str] | None) -> dict[str, Any]:
    """The stored widget with the row's title and place; an emptied place field is left out (Required)."""
    if row is None:
        return widget
    return {**widget, "title": row["title"], "position": {k: _number(row[k]) for k in PLACE if row[k].strip()}}


def _row_field(path: str) -> str | None:
    """layout.2.position.x -> layout-2-x; layout.2.title -> layout-2-title; layout.2 -> layout-2-x."""
    parts = path.split(".")
    if len(parts) < 2 or parts[0] != "layout" or not parts[1].isdigit():
        return None
    name = parts[-1] if len(parts) > 2 else "x"
    return f"layout-{parts[1]}-{'x' if name in ('position', '_schema') else name}"


def layout_problems(form: LayoutForm, details: dict[str, Any], message: str) -> LayoutForm:
    form.problems = shown(details, _row_field) if details else {"_form": message}
    return form


# One widget: to add, or to change.
def blank_widget(layout: list[dict[str, Any]]) -> Form:
    """A line chart of calls, half the width, below every widget, with the dashboard's filters."""
    below = max((w["position"]["y"] + w["position"]["h"] for w in layout), default=0)
    values = {"type": "line", "metric": "agents.calls", "title": "", "version": "", **filter_values({})}
    values.update(x="0", y=str(below), w="6", h="4")
    return Form(values)


def widget_values(widget: dict[str, Any]) -> Form:
    """A stored widget as its form: every field, and the version it was built from."""
    values = {key: str(widget.get(key, "")) for key in ("type", "metric", "title")}
    values.update({k: str(widget["position"][k]) for k in PLACE}, version=version(widget))
    return Form({**values, **filter_values(widget.get("filters", {}))})


def sent_widget(form: MultiDict[str, str], prefix: str) -> Form:
    return Form(_typed(form, WIDGET_FIELDS, prefix))


def _widget_body(values: dict[str, str], widget_id: str) -> dict[str, Any]:
    widget: dict[str, Any] = {"id": widget_id, "type": values["type"], "metric": values["metric"]}
    widget.update(title=values["title"], filters=filters_body(values))
    widget["position"] = {k: _number(values[k]) for k in PLACE if values[k].strip() != ""}
    return widget


def added(form: Form, layout: list[dict[str, Any]]) -> dict[str, Any] | None:
    """{"layout": stored + the new widget} as PUT /api/dashboards/<id> loads it; None with form.problems filled."""
    body = {"layout": [*layout, _widget_body(form.values, uuid.uuid4().hex[:12])]}
    loaded, form.problems = _load(DashboardUpdateSchema(), body, lambda path: _field_of(path, len(layout), "add-"))
    return loaded


def replaced(form: Form, layout: list[dict[str, Any]], widget_id: str) -> dict[str, Any] | None:
    """{"layout": stored, the widget as typed in its place}; Stale when it changed since; None with form.problems."""
    index = _unchanged(layout, widget_id, form.values["version"])
    body = {"layout": [*layout[:index], _widget_body(form.values, widget_id), *layout[index + 1 :]]}
    loaded, form.problems = _load(DashboardUpdateSchema(), body, lambda path: _field_of(path, index, "widget-"))
    return loaded


def without(layout: list[dict[str, Any]], widget_id: str, sent_version: str) -> dict[str, Any]:
    """{"layout": stored but the widget}; Stale when it changed since the form was built, or is gone."""
    index = _unchanged(layout, widget_id, sent_version)
    return {"layout": [*layout[:index], *layout[index + 1 :]]}


def widget_problems(form: Form, details: dict[str, Any], message: str, index: int, prefix: str) -> Form:
    """The API's refusal (an unknown metric) beside the form's field."""
    form.problems = shown(details, lambda path: _field_of(path, index, prefix)) if details else {"_form": message}
    return form
