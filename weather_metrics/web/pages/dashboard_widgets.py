"""A dashboard's widgets on the pages: add one, change one (type, metric, title, filters, place), remove one.

Each is a change of PUT /api/dashboards/<id>'s layout made on the layout as stored when it is written, in one write
transaction (dashboards.change_dashboard): two tabs adding widgets at once both keep theirs. A form built from a
widget that changed or went since is refused (409) with the dashboard as it is now, and nothing is written.
"""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import NotFound

from weather_metrics.core import errors
from weather_metrics.web.pages import widget_form as widgets
from weather_metrics.web.pages.blueprint import bp
from weather_metrics.web.pages.dashboard_edit import (
    ID,
    MINE,
    SEEN,
    _edit_page,
    _editable,
    _saved,
    change,
    choices,
    saving,
    stale_page,
)
from weather_metrics.web.pages.dashboard_form import Form, Stale
from weather_metrics.web.pages.dashboards import per_person
from weather_metrics.web.pages.sessions import current_viewer, signed_in

NO_WIDGET = "This dashboard has no such widget: it was removed already."


@bp.post("/dashboards/<dashboard_id>/widgets")
@signed_in()
@per_person
def add_dashboard_widget(dashboard_id: str) -> ResponseReturnValue:
    """Add a widget after the ones stored when it is written, as PUT with {"layout": ...} does."""
    login = current_viewer()
    _editable(login, dashboard_id)
    form, at = widgets.sent_widget(request.form, "add-"), {"index": 0}

    def edit(stored: dict[str, Any]) -> dict[str, Any] | None:
        at["index"] = len(stored["layout"])
        return widgets.added(form, stored["layout"])

    try:
        if change(login, dashboard_id, edit):
            return _saved(dashboard_id, "added")
    except errors.QueryError as exc:
        form = widgets.widget_problems(form, exc.details, str(exc), at["index"], "add-")
    return _edit_page(_editable(login, dashboard_id), 400, widget=form)


def _widget(board: dict[str, Any], widget_id: str) -> dict[str, Any]:
    found = next((widget for widget in board["layout"] if widget["id"] == widget_id), None)
    if found is None:
        raise NotFound(NO_WIDGET)
    return found


def _widget_page(board: dict[str, Any], widget_id: str, form: Form, status: int = 200) -> ResponseReturnValue:
    page = render_template(
        "pages/widget_edit.html",
        board=board,
        widget=_widget(board, widget_id),
        form=form,
        **choices(current_viewer(), board),
    )
    return page, status


@bp.get("/dashboards/<dashboard_id>/widgets/<widget_id>")
@signed_in()
@per_person
def edit_dashboard_widget(dashboard_id: str, widget_id: str) -> ResponseReturnValue:
    """The form of one widget: type, metric, title, every filter and its place."""
    board = _editable(current_viewer(), dashboard_id)
    return _widget_page(board, widget_id, widgets.widget_values(_widget(board, widget_id)))


@bp.post("/dashboards/<dashboard_id>/widgets/<widget_id>")
@signed_in()
@per_person
def update_dashboard_widget(dashboard_id: str, widget_id: str) -> ResponseReturnValue:
    """Change one widget, as PUT with the layout and it changed does; 409 when it changed since the form was built."""
    login = current_viewer()
    _widget(_editable(login, dashboard_id), widget_id)
    form, at = widgets.sent_widget(request.form, "widget-"), {"index": 0}

    def edit(stored: dict[str, Any]) -> dict[str, Any] | None:
        at["index"] = widgets.index_of(stored["layout"], widget_id) or 0
        return widgets.replaced(form, stored["layout"], widget_id)

    try:
        if change(login, dashboard_id, edit):
            return _saved(dashboard_id, "changed")
    except Stale as exc:
        return stale_page(login, dashboard_id, exc)
    except errors.QueryError as exc:
        form = widgets.widget_problems(form, exc.details, str(exc), at["index"], "widget-")
    return _widget_page(_editable(login, dashboard_id), widget_id, form, 400)


@bp.post("/dashboards/<dashboard_id>/widgets/<widget_id>/delete")
@signed_in()
@per_person
def remove_dashboard_widget(dashboard_id: str, widget_id: str) -> ResponseReturnValue:
    """Remove one widget, as PUT with the layout without it does; a widget already gone is 404, one changed 409."""
    login = current_viewer()
    _widget(_editable(login, dashboard_id), widget_id)
    sent_version = request.form.get("version", "")[:64]
    try:
        change(login, dashboard_id, lambda stored: widgets.without(stored["layout"], widget_id, sent_version))
    except Stale as exc:
        return stale_page(login, dashboard_id, exc)
    return redirect(url_for("pages.edit_dashboard", dashboard_id=dashboard_id, done="removed"), 303)


# OpenAPI, merged into /openapi.json by web/docs.py: pages answer HTML, their errors too.
HTML = {"text/html": {"schema": {"type": "string"}}}
WIDGET_ID = [{"name": "dashboard_id", **ID}, {"name": "widget_id", **ID}]
PATHS: dict[str, dict[str, Any]] = {
    "/dashboards/{dashboard_id}/widgets": {
        "post": saving("Add a widget, as PUT /api/dashboards/<id> with the layout and it does"),
        "parameters": [{"name": "dashboard_id", **ID}],
    },
    "/dashboards/{dashboard_id}/widgets/{widget_id}": {
        "get": {
            "summary": "The form of one widget: type, metric, title, filters, place",
            "tags": ["Pages"],
            "security": [{"browserSession": []}],
            "responses": {
                code: {"description": why, "content": HTML}
                for code, why in {"200": "The form", **MINE, **SEEN, "404": "No such dashboard or widget"}.items()
            },
        },
        "post": saving("Change a widget, as PUT /api/dashboards/<id> with the layout and it changed does"),
        "parameters": WIDGET_ID,
    },
    "/dashboards/{dashboard_id}/widgets/{widget_id}/delete": {
        "post": saving("Remove a widget, as PUT /api/dashboards/<id> with the layout without it does", refused=False),
        "parameters": WIDGET_ID,
    },
}
