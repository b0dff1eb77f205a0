"""/alerts and /alerts/history: alert rules and their alerts, as /api/alerts shows them to the same person.

Admins and managers only, as the API: admins see and change every rule of the organization,
managers those scoped to one of their teams (weather_metrics.alerts.rules decides, for both).
Forms go through the API's schemas and domain functions, so they accept and refuse what the
API does; a refused form comes back with each problem beside its field. The history page hears
of new alerts over /ws (the alerts room, static/alerts.js) and redraws itself.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from flask import redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from marshmallow import ValidationError
from werkzeug.exceptions import BadRequest, Forbidden, NotFound

from weather_metrics.accounts.logins import BrowserLogin
from weather_metrics.alerts import rules as alerts
from weather_metrics.alerts.rules import SEVERITIES
from weather_metrics.core import errors
from weather_metrics.query.org_metrics import pagination
from weather_metrics.store.models import AlertRule, Team, TeamMember
from weather_metrics.web.api.alert_schemas import AlertQuerySchema
from weather_metrics.web.pages import alert_form
from weather_metrics.web.pages.alert_form import RuleForm
from weather_metrics.web.pages.blueprint import bp
from weather_metrics.web.pages.dashboards import per_person
from weather_metrics.web.pages.sessions import current_viewer, signed_in

ROLES = ("admin", "manager")
DONE = {  # what the list says after a form (?done=...): only these words, never text from the URL
    "created": "The rule is created; it is evaluated at once.",
    "saved": "The rule is saved.",
    "enabled": "The rule is enabled; it is evaluated at once.",
    "disabled": "The rule is disabled; its open alert, if any, is resolved.",
    "deleted": "The rule is deleted; its alerts stay in the history.",
}
LABELS = {
    "metric_names": alert_form.METRIC_NAMES,
    "scope_names": alert_form.SCOPE_NAMES,
    "comparison_names": alert_form.COMPARISON_NAMES,
    "severity_names": {level: level.capitalize() for level in SEVERITIES},
    "symbols": alert_form.SYMBOLS,
}
GONE = "No alert rule of yours has this address: it was deleted, or is not one you may see."


def _now() -> int:
    return int(time.time())


def _render(template: str, **context: Any) -> str:
    return render_template(f"pages/{template}.html", **LABELS, **context)


@bp.app_template_filter("alert_figure")
def alert_figure(value: float | None, metric: str) -> str:
    return alert_form.threshold_text(metric, value)


@bp.app_template_filter("iso_moment")
def iso_moment(stamp: str) -> str:
    """2025-11-12T14:03:00.000Z as the pages print times: 2025-11-12 14:03 UTC."""
    return datetime.fromisoformat(stamp).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _teams(login: BrowserLogin) -> dict[str, str]:
    """Team names by id, of the teams a rule of this person may watch: admins every team, managers theirs."""
    query = Team.select().where(Team.organization == login.organization.id).order_by(Team.name)
    if login.role != "admin":
        query = query.where(Team.id.in_(TeamMember.select(TeamMember.team_id).where(TeamMember.user == login.user.id)))
    return {team.id: team.name for team in query}


def _all_team_names(login: BrowserLogin) -> dict[str, str]:
    return {team.id: team.name for team in Team.select().where(Team.organization == login.organization.id)}


def _rule(login: BrowserLogin, rule_id: str) -> AlertRule:
    try:
        return alerts.find_rule(login.user, rule_id)
    except errors.NotFound:
        raise NotFound(GONE) from None


@bp.get("/alerts")
@signed_in(*ROLES)
@per_person
def alert_rules() -> str:
    """The alert rules GET /api/alerts/rules lists for this person, each with its state and last firing."""
    login = current_viewer()
    return _render(
        "alerts",
        rules=[alerts.rule_view(rule) for rule in alerts.list_rules(login.user)],
        teams=_all_team_names(login),
        done=DONE.get(request.args.get("done", "")),
    )


def _form_page(form: RuleForm, status: int = 200, rule: dict[str, Any] | None = None) -> ResponseReturnValue:
    login = current_viewer()
    return _render("alert_form", form=form, rule=rule, teams=_teams(login)), status


@bp.get("/alerts/new")
@signed_in(*ROLES)
@per_person
def new_alert_rule() -> ResponseReturnValue:
    """The form of a new rule."""
    return _form_page(alert_form.blank_form())


@bp.post("/alerts/new")
@signed_in(*ROLES)
@per_person
def create_alert_rule() -> ResponseReturnValue:
    """Create a rule as POST /api/alerts/rules does; the form again, with its problems, when refused."""
    login = current_viewer()
    form = alert_form.sent_form(request.form)
    body = alert_form.checked_body(form)
    if body is None:
        return _form_page(form, 400)
    try:
        alerts.create_rule(login.user, body, _now())
    except errors.QueryError as exc:
        return _form_page(alert_form.refused(form, exc.details, str(exc)), 400)
    except errors.NotFound as exc:
        return _form_page(alert_form.refused(form, {"scope.id": str(exc)}, str(exc)), 400)
    except errors.OutOfScope as exc:
        return _form_page(alert_form.refused(form, {"scope.type": str(exc)}, str(exc)), 403)
    return redirect(url_for("pages.alert_rules", done="created"), 303)


@bp.get("/alerts/<rule_id>/edit")
@signed_in(*ROLES)
@per_person
def edit_alert_rule(rule_id: str) -> ResponseReturnValue:
    """The form of one rule, filled in."""
    rule = alerts.rule_view(_rule(current_viewer(), rule_id))
    return _form_page(alert_form.form_of(rule), rule=rule)


@bp.post("/alerts/<rule_id>/edit")
@signed_in(*ROLES)
@per_person
def update_alert_rule(rule_id: str) -> ResponseReturnValue:
    """Change a rule as PUT /api/alerts/rules/<id> does; the form again, with its problems, when refused."""
    login = current_viewer()
    rule = alerts.rule_view(_rule(login, rule_id))
    form = alert_form.sent_form(request.form)
    changes = alert_form.checked_body(form)
    if changes is None:
        return _form_page(form, 400, rule)
    if changes.get("scope") == rule["scope"]:
        del changes["scope"]  # unchanged: a rule whose team was deleted can still be changed otherwise
    try:
        alerts.update_rule(login.user, rule_id, changes, _now())
    except errors.QueryError as exc:
        return _form_page(alert_form.refused(form, exc.details, str(exc)), 400, rule)
    except errors.NotFound as exc:
        if "scope" not in changes:
            raise NotFound(GONE) from None  # deleted meanwhile
        return _form_page(alert_form.refused(form, {"scope.id": str(exc)}, str(exc)), 400, rule)
    except errors.OutOfScope as exc:
        return _form_page(alert_form.refused(form, {"scope.type": str(exc)}, str(exc)), 403, rule)
    return redirect(url_for("pages.alert_rules", done="saved"), 303)


@bp.post("/alerts/<rule_id>/enabled")
@signed_in(*ROLES)
@per_person
def switch_alert_rule(rule_id: str) -> ResponseReturnValue:
    """Enable (enabled=true) or disable (enabled=false) a rule, as PUT with {"enabled": ...} does."""
    wanted = request.form.get("enabled")
    if wanted not in ("true", "false"):
        raise BadRequest("The form said neither enable nor disable (enabled is true or false).")
    login = current_viewer()
    try:
        alerts.update_rule(login.user, rule_id, {"enabled": wanted == "true"}, _now())
    except errors.NotFound:
        raise NotFound(GONE) from None
    except errors.QueryError as exc:  # a rule that no longer fits together: its form says why
        raise BadRequest(f"{exc}: {'; '.join(exc.details.values())}. Edit the rule first.") from None
    except errors.OutOfScope as exc:
        raise Forbidden(f"{exc}.") from None
    return redirect(url_for("pages.alert_rules", done="enabled" if wanted == "true" else "disabled"), 303)


@bp.get("/alerts/<rule_id>/delete")
@signed_in(*ROLES)
@per_person
def confirm_alert_rule_deletion(rule_id: str) -> str:
    """Asks whether to delete the rule."""
    rule = alerts.rule_view(_rule(current_viewer(), rule_id))
    return _render("alert_delete", rule=rule, teams=_all_team_names(current_viewer()))


@bp.post("/alerts/<rule_id>/delete")
@signed_in(*ROLES)
@per_person
def delete_alert_rule(rule_id: str) -> ResponseReturnValue:
    """Delete a rule as DELETE /api/alerts/rules/<id> does; its alerts stay in the history."""
    try:
        alerts.delete_rule(current_viewer().user, rule_id, _now())
    except errors.NotFound:
        raise NotFound(GONE) from None
    return redirect(url_for("pages.alert_rules", done="deleted"), 303)


def _history_query() -> dict[str, Any]:
    """The page's filters and page number, checked as GET /api/alerts checks its query (empty fields ignored)."""
    args = {key: value for key, value in request.args.items() if value != ""}
    try:
        return AlertQuerySchema().load(args)  # type: ignore[no-any-return]
    except ValidationError as exc:
        fields = ", ".join(sorted(exc.messages)) if isinstance(exc.messages, dict) else "the query"
        raise BadRequest(f"This address asks for alerts in a way the history does not know ({fields}).") from None


@bp.get("/alerts/history")
@signed_in(*ROLES)
@per_person
def alert_history() -> str:
    """The alerts GET /api/alerts gives this person, newest first, a page at a time; new ones arrive live."""
    login = current_viewer()
    query = _history_query()
    events, total = alerts.list_events(login.user, query, query["page"], query["limit"])
    filters = {name: query[name] for name in ("state", "severity", "rule_id") if name in query}
    return _render(
        "alert_history",
        alerts=[alerts.event_view(event) for event in events],
        pages=pagination(query["page"], query["limit"], total),
        filters=filters,
        limit=query["limit"],
        teams=_all_team_names(login),
    )


# OpenAPI, merged into /openapi.json by web/docs.py: pages answer HTML, their errors too.
BROWSER_SESSION: list[dict[str, list[str]]] = [{"browserSession": []}]
SEEN = {
    "303": "Nobody signed in: to the sign-in page, then back",
    "403": "Developers (a page)",
    "429": "Too many requests",
}
SENT = {**SEEN, "403": "Developers, or a form without this browser's token (a page)", "413": "Form too large"}
RULE_ID = [{"name": "rule_id", "in": "path", "required": True, "schema": {"type": "string"}}]
FORM = {
    "required": True,
    "content": {
        "application/x-www-form-urlencoded": {
            "schema": {"type": "object", "required": ["csrf_token"], "properties": {"csrf_token": {"type": "string"}}}
        }
    },
}


def _doc(summary: str, answers: dict[str, str], form: bool = False) -> dict[str, Any]:
    responses = {code: {"description": why, "content": HTML} for code, why in answers.items()}
    operation = {"summary": summary, "tags": ["Pages"], "security": BROWSER_SESSION, "responses": responses}
    return {**operation, "requestBody": FORM} if form else operation


HTML = {"text/html": {"schema": {"type": "string"}}}
REFUSED = {"400": "A field refused, as the API refuses it: the form again, the problem beside the field"}
PATHS: dict[str, dict[str, Any]] = {
    "/alerts": {"get": _doc("The alert rules GET /api/alerts/rules lists for you", {"200": "The rules", **SEEN})},
    "/alerts/new": {
        "get": _doc("The form of a new alert rule", {"200": "The form", **SEEN}),
        "post": _doc(
            "Create an alert rule as POST /api/alerts/rules does",
            {"303": "Created: on to /alerts", **REFUSED, **SENT},
            form=True,
        ),
    },
    "/alerts/{rule_id}/edit": {
        "get": _doc("The form of one alert rule", {"200": "The form", "404": "No rule of yours (a page)", **SEEN}),
        "post": _doc(
            "Change an alert rule as PUT /api/alerts/rules/<id> does",
            {"303": "Saved: on to /alerts", **REFUSED, "404": "No rule of yours (a page)", **SENT},
            form=True,
        ),
        "parameters": RULE_ID,
    },
    "/alerts/{rule_id}/enabled": {
        "post": _doc(
            "Enable (enabled=true) or disable (enabled=false) an alert rule",
            {"303": "Done: on to /alerts", "400": "enabled neither true nor false", "404": "No rule of yours", **SENT},
            form=True,
        ),
        "parameters": RULE_ID,
    },
    "/alerts/{rule_id}/delete": {
        "get": _doc("Asks whether to delete an alert rule", {"200": "The question", "404": "No rule of yours", **SEEN}),
        "post": _doc(
            "Delete an alert rule as DELETE /api/alerts/rules/<id> does",
            {"303": "Deleted: on to /alerts", "404": "No rule of yours (a page)", **SENT},
            form=True,
        ),
        "parameters": RULE_ID,
    },
    "/alerts/history": {
        "get": {
            **_doc(
                "The alerts GET /api/alerts gives you, newest first; new ones arrive over /ws",
                {"200": "A page of alerts", "400": "A filter or page the API refuses (a page)", **SEEN},
            ),
            "parameters": [{"in": "query", "schema": AlertQuerySchema}],
        }
    },
}
