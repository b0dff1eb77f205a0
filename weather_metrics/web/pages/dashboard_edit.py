"""Creating, editing and deleting dashboards on the pages, as POST, PUT and DELETE /api/dashboards do.

Forms go through the API's schemas and weather_metrics.dashboards, so they accept and refuse what the
API does for the same person: anyone keeps personal dashboards, admins and the team's managers team
ones, admins the organization's. A dashboard the viewer cannot see is 404, one they see but may not
change 403; a refused form comes back (400, or 403 for a scope not theirs) with each problem beside its field.
"""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import Forbidden, NotFound

from weather_metrics import dashboards
from weather_metrics.accounts.logins import BrowserLogin
from weather_metrics.core import errors
from weather_metrics.web.pages import dashboard_form as forms
from weather_metrics.web.pages.blueprint import bp
from weather_metrics.web.pages.dashboard_form import Form, LayoutForm
from weather_metrics.web.pages.dashboards import SCOPE_NAMES, list_page, metric_label, new_form_context, per_person
from weather_metrics.web.pages.sessions import current_viewer, signed_in

GONE = "No dashboard of yours has this address: it was deleted, or is not shared with you."
DONE = {  # what the edit page says after a form (?done=...): only these words, never text from the URL
    "created": "The dashboard is created. Add its widgets below.",
    "saved": "The name and description are saved.",
    "layout": "The layout is saved.",
    "added": "The widget is added.",
    "removed": "The widget is removed.",
}


@bp.post("/dashboards/new")
@signed_in()
@per_person
def create_dashboard() -> ResponseReturnValue:
    """Create a dashboard as POST /api/dashboards does, then on to its edit page; the list again when refused."""
    login = current_viewer()
    form = forms.sent_new(request.form)
    body = forms.checked_new(form)
    if body is None:
        return list_page(**new_form_context(login, form)), 400
    try:
        board = dashboards.create_dashboard(login.user, body)
    except errors.QueryError as exc:
        form.problems = forms.shown(exc.details, lambda path: path if path in forms.NEW_FIELDS else None)
        return list_page(**new_form_context(login, form)), 400
    except errors.NotFound as exc:
        form.problems = {"team_id": str(exc) + "."}
        return list_page(**new_form_context(login, form)), 400
    except errors.OutOfScope as exc:
        form.problems = {"scope": str(exc) + "."}
        return list_page(**new_form_context(login, form)), 403
    return redirect(url_for("pages.edit_dashboard", dashboard_id=board.id, done="created"), 303)


def _editable(login: BrowserLogin, dashboard_id: str) -> dict[str, Any]:
    """The dashboard as the API shows it: 404 unless the person sees it, 403 unless they may change it."""
    try:
        board = dashboards.find_dashboard(login.user, dashboard_id)
    except errors.NotFound:
        raise NotFound(GONE) from None
    view = dashboards.dashboard_view(board)
    if not dashboards.may_manage(login.user, view):
        raise Forbidden(_why_not(view["scope"]))
    return view


def _why_not(scope: str) -> str:
    if scope == "organization":
        return "Only admins may change organization dashboards."
    if scope == "team":
        return "Only admins and managers of the team may change its dashboards."
    return "Only its owner may change a personal dashboard."


def _edit_page(
    board: dict[str, Any],
    status: int = 200,
    details: Form | None = None,
    layout: LayoutForm | None = None,
    widget: Form | None = None,
) -> ResponseReturnValue:
    login = current_viewer()
    metrics = sorted(dashboards.known_metrics(login.organization.id))
    page = render_template(
        "pages/dashboard_edit.html",
        board=board,
        details=details or forms.details_of(board),
        layout=layout or forms.layout_of(board["layout"]),
        widget=widget or forms.blank_widget(board["layout"]),
        metrics={metric: metric_label(metric) for metric in metrics},
        labels=metric_label,
        type_names=forms.TYPE_NAMES,
        range_names=forms.RANGE_NAMES,
        aggregation_names=forms.AGGREGATION_NAMES,
        done=DONE.get(request.args.get("done", "")),
    )
    return page, status


def _saved(dashboard_id: str, done: str) -> ResponseReturnValue:
    return redirect(url_for("pages.edit_dashboard", dashboard_id=dashboard_id, done=done), 303)


def _update(login: BrowserLogin, dashboard_id: str, changes: dict[str, Any]) -> None:
    """PUT /api/dashboards/<id>'s change; a dashboard deleted or no longer theirs meanwhile is 404 or 403."""
    try:
        dashboards.update_dashboard(login.user, dashboard_id, changes)
    except errors.NotFound:
        raise NotFound(GONE) from None
    except errors.OutOfScope as exc:
        raise Forbidden(f"{exc}.") from None


@bp.get("/dashboards/<dashboard_id>/edit")
@signed_in()
@per_person
def edit_dashboard(dashboard_id: str) -> ResponseReturnValue:
    """The forms of one dashboard: name and description, each widget's place, a widget to add."""
    return _edit_page(_editable(current_viewer(), dashboard_id))


@bp.post("/dashboards/<dashboard_id>/edit")
@signed_in()
@per_person
def update_dashboard_details(dashboard_id: str) -> ResponseReturnValue:
    """Rename a dashboard or change its description, as PUT /api/dashboards/<id> does."""
    login = current_viewer()
    board = _editable(login, dashboard_id)
    form = forms.sent_details(request.form)
    changes = forms.checked_details(form)
    if changes is None:
        return _edit_page(board, 400, details=form)
    _update(login, dashboard_id, changes)
    return _saved(dashboard_id, "saved")


@bp.post("/dashboards/<dashboard_id>/layout")
@signed_in()
@per_person
def update_dashboard_layout(dashboard_id: str) -> ResponseReturnValue:
    """Each widget's title and place (x, y, w, h on the 12-column grid), as PUT with {"layout": ...} does."""
    login = current_viewer()
    board = _editable(login, dashboard_id)
    form = forms.sent_layout(request.form, board["layout"])
    changes = forms.checked_layout(form)
    if changes is None:
        return _edit_page(board, 400, layout=form)
    try:
        _update(login, dashboard_id, changes)
    except errors.QueryError as exc:
        return _edit_page(board, 400, layout=forms.layout_problems(form, exc.details, str(exc)))
    return _saved(dashboard_id, "layout")


@bp.post("/dashboards/<dashboard_id>/widgets")
@signed_in()
@per_person
def add_dashboard_widget(dashboard_id: str) -> ResponseReturnValue:
    """Add a widget: the stored layout and the new one, as PUT with {"layout": ...} does."""
    login = current_viewer()
    board = _editable(login, dashboard_id)
    form = forms.sent_widget(request.form)
    changes = forms.checked_widget(form, board["layout"])
    if changes is None:
        return _edit_page(board, 400, widget=form)
    try:
        _update(login, dashboard_id, changes)
    except errors.QueryError as exc:
        index = len(board["layout"])
        return _edit_page(board, 400, widget=forms.widget_problems(form, exc.details, str(exc), index))
    return _saved(dashboard_id, "added")


@bp.post("/dashboards/<dashboard_id>/widgets/<widget_id>/delete")
@signed_in()
@per_person
def remove_dashboard_widget(dashboard_id: str, widget_id: str) -> ResponseReturnValue:
    """Remove one widget, as PUT with the layout without it does; a widget already gone is 404."""
    login = current_viewer()
    board = _editable(login, dashboard_id)
    kept = [widget for widget in board["layout"] if widget["id"] != widget_id]
    if len(kept) == len(board["layout"]):
        raise NotFound("This dashboard has no such widget: it was removed already.")
    _update(login, dashboard_id, {"layout": kept})
    return _saved(dashboard_id, "removed")


@bp.get("/dashboards/<dashboard_id>/delete")
@signed_in()
@per_person
def confirm_dashboard_deletion(dashboard_id: str) -> str:
    """Asks whether to delete the dashboard."""
    board = _editable(current_viewer(), dashboard_id)
    return render_template("pages/dashboard_delete.html", board=board, scope_names=SCOPE_NAMES)


@bp.post("/dashboards/<dashboard_id>/delete")
@signed_in()
@per_person
def delete_dashboard(dashboard_id: str) -> ResponseReturnValue:
    """Delete a dashboard as DELETE /api/dashboards/<id> does."""
    login = current_viewer()
    _editable(login, dashboard_id)
    try:
        dashboards.delete_dashboard(login.user, dashboard_id)
    except errors.NotFound:
        raise NotFound(GONE) from None
    except errors.OutOfScope as exc:
        raise Forbidden(f"{exc}.") from None
    return redirect(url_for("pages.dashboard_list", done="deleted"), 303)


# OpenAPI, merged into /openapi.json by web/docs.py: pages answer HTML, their errors too.
HTML = {"text/html": {"schema": {"type": "string"}}}
SEEN = {"303": "Nobody signed in: to the sign-in page, then back", "429": "Too many requests"}
MINE = {
    "403": "A dashboard you see but may not change, as PUT /api/dashboards/<id> refuses it (a page)",
    "404": "No dashboard of yours has this id (a page)",
}
SENT = {**SEEN, **MINE, "403": "Not yours to change, or a form without this browser's token (a page)"}
REFUSED = {"400": "A field refused, as the API refuses it: the form again, the problem beside the field"}
FORM = {
    "required": True,
    "content": {
        "application/x-www-form-urlencoded": {
            "schema": {"type": "object", "required": ["csrf_token"], "properties": {"csrf_token": {"type": "string"}}}
        }
    },
}
ID = {"in": "path", "required": True, "schema": {"type": "string"}}


def _doc(summary: str, answers: dict[str, str], form: bool = False) -> dict[str, Any]:
    responses = {code: {"description": why, "content": HTML} for code, why in answers.items()}
    operation = {"summary": summary, "tags": ["Pages"], "security": [{"browserSession": []}], "responses": responses}
    return {**operation, "requestBody": FORM} if form else operation


def _saving(summary: str, refused: bool = True) -> dict[str, Any]:
    return _doc(summary, {"303": "Saved: on to the edit page", **(REFUSED if refused else {}), **SENT}, form=True)


PATHS: dict[str, dict[str, Any]] = {
    "/dashboards/new": {
        "post": _doc(
            "Create a dashboard as POST /api/dashboards does",
            {
                "303": "Created: on to its edit page",
                **REFUSED,
                **SEEN,
                "403": "A scope not yours, or a form without this browser's token (a page)",
            },
            form=True,
        )
    },
    "/dashboards/{dashboard_id}/edit": {
        "get": _doc(
            "The forms of a dashboard: name, widgets' places, a widget to add", {"200": "The forms", **MINE, **SEEN}
        ),
        "post": _saving("Rename a dashboard or change its description, as PUT /api/dashboards/<id> does"),
        "parameters": [{"name": "dashboard_id", **ID}],
    },
    "/dashboards/{dashboard_id}/layout": {
        "post": _saving("Each widget's title and place, as PUT /api/dashboards/<id> with the layout does"),
        "parameters": [{"name": "dashboard_id", **ID}],
    },
    "/dashboards/{dashboard_id}/widgets": {
        "post": _saving("Add a widget, as PUT /api/dashboards/<id> with the layout and it does"),
        "parameters": [{"name": "dashboard_id", **ID}],
    },
    "/dashboards/{dashboard_id}/widgets/{widget_id}/delete": {
        "post": _saving("Remove a widget, as PUT /api/dashboards/<id> with the layout without it does", refused=False),
        "parameters": [{"name": "dashboard_id", **ID}, {"name": "widget_id", **ID}],
    },
    "/dashboards/{dashboard_id}/delete": {
        "get": _doc("Asks whether to delete a dashboard", {"200": "The question", **MINE, **SEEN}),
        "post": _doc(
            "Delete a dashboard as DELETE /api/dashboards/<id> does",
            {"303": "Deleted: on to /dashboards", **SENT},
            form=True,
        ),
        "parameters": [{"name": "dashboard_id", **ID}],
    },
}
