"""Creating, editing and deleting dashboards on the pages, as POST, PUT and DELETE /api/dashboards do.

Forms go through the API's schemas and weather_metrics.dashboards, so they accept and refuse what the
API does for the same person: anyone keeps personal dashboards, admins and the team's managers team
ones, admins the organization's. A dashboard the viewer cannot see is 404, one they see but may not
change 403; a refused form comes back (400, or 403 for a scope not theirs) with each problem beside its field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import Forbidden, NotFound

from weather_metrics import dashboards
from weather_metrics.accounts.logins import BrowserLogin
from weather_metrics.core import errors
from weather_metrics.query.scope import scope_for
from weather_metrics.web.pages import dashboard_form as forms
from weather_metrics.web.pages import widget_form as widgets
from weather_metrics.web.pages.blueprint import bp
from weather_metrics.web.pages.dashboard_form import Form, Stale
from weather_metrics.web.pages.dashboards import SCOPE_NAMES, list_page, metric_label, new_form_context, per_person
from weather_metrics.web.pages.explore_figures import team_choices, user_choices
from weather_metrics.web.pages.sessions import current_viewer, signed_in
from weather_metrics.web.pages.widget_form import LayoutForm

GONE = "No dashboard of yours has this address: it was deleted, or is not shared with you."
DONE = {  # what the edit page says after a form (?done=...): only these words, never text from the URL
    "created": "The dashboard is created. Add its widgets below.",
    "saved": "The name and description are saved.",
    "layout": "The layout is saved.",
    "added": "The widget is added.",
    "removed": "The widget is removed.",
    "changed": "The widget is saved.",
}
STALE = (
    "Not saved: {what} after this page was opened (in another tab, or by someone else). "
    "Below is the dashboard as it is now; make your change again if it is still wanted."
)


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


def choices(login: BrowserLogin, board: dict[str, Any]) -> dict[str, Any]:
    """What the widget and filter fields offer: every metric, type and filter value the API takes for this person.

    A team or person already chosen on the dashboard (by someone who sees more) stays offered, so saving keeps it.
    """
    scope = scope_for(login.user)
    teams, users = team_choices(login, scope), user_choices(login, scope)
    metrics = {metric: metric_label(metric) for metric in sorted(dashboards.known_metrics(login.organization.id))}
    for filters in [board["filters"], *(w.get("filters", {}) for w in board["layout"])]:
        if filters.get("team_id"):
            teams.setdefault(filters["team_id"], f"A team you do not lead ({filters['team_id']})")
        if filters.get("user_id"):
            users.setdefault(filters["user_id"], f"Someone outside your teams ({filters['user_id']})")
    for w in board["layout"]:
        metrics.setdefault(w["metric"], metric_label(w["metric"]))
    return {
        "metrics": metrics,
        "teams": teams,
        "users": users,
        "labels": metric_label,
        "type_names": forms.TYPE_NAMES,
        "range_names": forms.RANGE_NAMES,
        "aggregation_names": forms.AGGREGATION_NAMES,
        "success_names": forms.SUCCESS_NAMES,
        "widget_blanks": forms.WIDGET_BLANKS,
        "board_blanks": forms.BOARD_BLANKS,
    }


def _edit_page(
    board: dict[str, Any],
    status: int = 200,
    details: Form | None = None,
    layout: LayoutForm | None = None,
    widget: Form | None = None,
    stale: str | None = None,
) -> ResponseReturnValue:
    login = current_viewer()
    page = render_template(
        "pages/dashboard_edit.html",
        board=board,
        details=details or forms.details_of(board),
        layout=layout or widgets.layout_of(board["layout"]),
        widget=widget or widgets.blank_widget(board["layout"]),
        done=DONE.get(request.args.get("done", "")),
        stale=STALE.format(what=stale) if stale else None,
        **choices(login, board),
    )
    return page, status


def stale_page(login: BrowserLogin, dashboard_id: str, exc: Stale) -> ResponseReturnValue:
    """409: nothing was written; the edit page of the dashboard as it is now, saying what changed."""
    return _edit_page(_editable(login, dashboard_id), 409, stale=str(exc))


def change(login: BrowserLogin, dashboard_id: str, edit: Callable[[dict[str, Any]], dict[str, Any] | None]) -> bool:
    """dashboards.change_dashboard for the pages: False when `edit` refused the form (nothing written).

    A dashboard deleted or no longer theirs meanwhile is 404 or 403; Stale and QueryError reach the caller.
    """
    try:
        return dashboards.change_dashboard(login.user, dashboard_id, edit) is not None
    except errors.NotFound:
        raise NotFound(GONE) from None
    except errors.OutOfScope as exc:
        raise Forbidden(f"{exc}.") from None


def _saved(dashboard_id: str, done: str) -> ResponseReturnValue:
    return redirect(url_for("pages.edit_dashboard", dashboard_id=dashboard_id, done=done), 303)


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
    """Name, description, default and the dashboard's filters, as PUT /api/dashboards/<id> does; 409 when stale."""
    login = current_viewer()
    board = _editable(login, dashboard_id)
    form = forms.sent_details(request.form)
    changes = forms.checked_details(form)
    if changes is None:
        return _edit_page(board, 400, details=form)

    def edit(stored: dict[str, Any]) -> dict[str, Any]:
        forms.check_details_version(form, stored)
        return changes

    try:
        change(login, dashboard_id, edit)
    except Stale as exc:
        return stale_page(login, dashboard_id, exc)
    return _saved(dashboard_id, "saved")


@bp.post("/dashboards/<dashboard_id>/layout")
@signed_in()
@per_person
def update_dashboard_layout(dashboard_id: str) -> ResponseReturnValue:
    """Each widget's title and place (x, y, w, h on the 12-column grid), as PUT with {"layout": ...} does.

    Made on the layout as stored when it is written: widgets added meanwhile are kept; one changed or removed since
    the page was built makes the form stale (409), nothing written.
    """
    login = current_viewer()
    board = _editable(login, dashboard_id)
    rows, form = widgets.sent_rows(request.form), LayoutForm([])
    try:
        if change(login, dashboard_id, lambda stored: widgets.layout_change(rows, form, stored["layout"])):
            return _saved(dashboard_id, "layout")
    except Stale as exc:
        return stale_page(login, dashboard_id, exc)
    except errors.QueryError as exc:
        return _edit_page(board, 400, layout=widgets.layout_problems(form, exc.details, str(exc)))
    return _edit_page(_editable(login, dashboard_id), 400, layout=form)


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
STALE_ANSWER = {"409": "Changed since the form was built (another tab): nothing saved; the dashboard as it is now"}
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


def saving(summary: str, refused: bool = True) -> dict[str, Any]:
    answers = {"303": "Saved: on to the edit page", **(REFUSED if refused else {}), **STALE_ANSWER, **SENT}
    return _doc(summary, answers, form=True)


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
            "The forms of a dashboard: name and filters, widgets' places, a widget to add",
            {"200": "The forms", **MINE, **SEEN},
        ),
        "post": saving("Name, description, default and filters of a dashboard, as PUT /api/dashboards/<id> does"),
        "parameters": [{"name": "dashboard_id", **ID}],
    },
    "/dashboards/{dashboard_id}/layout": {
        "post": saving("Each widget's title and place, as PUT /api/dashboards/<id> with the layout does"),
        "parameters": [{"name": "dashboard_id", **ID}],
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
