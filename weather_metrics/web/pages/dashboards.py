"""/dashboards and /dashboards/<id>: the viewer's dashboards, each widget drawn from the API's own figures, live.

The figures come from weather_metrics.dashboards, the functions GET /api/dashboards and
/api/dashboards/<id>/data call, for the person signed in. A page keeps them current over /ws:
POST /live/ticket (the session cookie and the X-CSRF-Token header) gives it a single-use ticket.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import jsonify, render_template, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import NotFound

from weather_metrics import dashboards
from weather_metrics.accounts.logins import BrowserLogin
from weather_metrics.core import errors
from weather_metrics.store.models import Team, TeamMember
from weather_metrics.web.auth import client_ip
from weather_metrics.web.limits import limiter
from weather_metrics.web.pages import dashboard_form as forms
from weather_metrics.web.pages.account import _html_page
from weather_metrics.web.pages.blueprint import bp
from weather_metrics.web.pages.dashboard_form import Form
from weather_metrics.web.pages.sessions import current_viewer, signed_in, viewer
from weather_metrics.web.pages.stats import CHART_JS
from weather_metrics.web.services import services
from weather_metrics.web.ws.admission import issue_ticket

SCOPE_NAMES = {"user": "Personal", "team": "Team", "organization": "Organization"}
AGENT_LABELS = {
    "calls": "Calls",
    "successes": "Successes",
    "failures": "Failures",
    "success_rate": "Success rate",
    "avg_duration_ms": "Mean duration",
    "p50_duration_ms": "Median duration",
    "p95_duration_ms": "95th percentile duration",
    "p99_duration_ms": "99th percentile duration",
}


def _person_key() -> str:
    login = viewer()
    return "page-user:" + login.user.id if login is not None else "page-ip:" + client_ip()


# The API's allowance per person (api_rate_limit), counted for these pages together.
per_person = limiter.shared_limit(
    lambda: services().settings["api_rate_limit"],
    scope="org-pages",
    key_func=_person_key,
)


def metric_label(metric: str) -> str:
    """agents.p95_duration_ms -> "95th percentile duration (agents)"; productivity.commits -> "Commits"."""
    family, _, name = metric.partition(".")
    if family == "agents":
        return AGENT_LABELS.get(name, name.replace("_", " ").capitalize()) + " (agents)"
    return name.replace("_", " ").capitalize()


def metric_kind(metric: str) -> str:
    """How a metric's figures read: a rate as a percentage, durations in ms, anything else as a count."""
    name = metric.partition(".")[2]
    if name == "success_rate":
        return "percent"
    return "ms" if name.endswith("_duration_ms") else "count"


@bp.app_template_filter("metric_figure")
def metric_figure(value: float | None, metric: str) -> str:
    """A widget's figure as the pages print it (static/dashboard.js prints live ones the same way)."""
    if value is None:
        return "–"
    kind = metric_kind(metric)
    if kind == "percent":
        return f"{value * 100:.1f} %"
    if kind == "ms":
        return f"{value:,.0f} ms"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


@bp.app_template_filter("period_label")
def period_label(period: str, aggregation: str) -> str:
    """2025-11-12T14:00:00+01:00 -> "2025-11-12 14:00" by the hour, "2025-11-12" by day or week, "2025-11" by month."""
    if aggregation == "hour":
        return period[:10] + " " + period[11:16]
    return period[:7] if aggregation == "month" else period[:10]


DONE = {"deleted": "The dashboard is deleted."}  # ?done=... on the list: only these words


def _team_names(organization_id: str) -> dict[str, str]:
    return {team.id: team.name for team in Team.select().where(Team.organization == organization_id)}


@bp.get("/dashboards")
@signed_in()
@per_person
def dashboard_list() -> str:
    """The dashboards the API lists for this person: their own, their teams' and the organization's."""
    return list_page(**new_form_context(current_viewer()), done=DONE.get(request.args.get("done", "")))


def list_page(**context: Any) -> str:
    """The list, with the New dashboard form (`new_form`, `new_scopes`, `new_teams`) as given."""
    login = current_viewer()
    found = [dashboards.dashboard_view(d) for d in dashboards.list_dashboards(login.user)]
    return render_template(
        "pages/dashboards.html",
        dashboards=found,
        scope_names=SCOPE_NAMES,
        teams=_team_names(login.organization.id),
        **context,
    )


def team_choices(login: BrowserLogin) -> dict[str, str]:
    """Team names by id a dashboard of this person may be shared with: admins every team, managers theirs."""
    if login.role not in ("admin", "manager"):
        return {}
    query = Team.select().where(Team.organization == login.organization.id).order_by(Team.name)
    if login.role != "admin":
        query = query.where(Team.id.in_(TeamMember.select(TeamMember.team_id).where(TeamMember.user == login.user.id)))
    return {team.id: team.name for team in query}


def new_form_context(login: BrowserLogin, form: Form | None = None) -> dict[str, Any]:
    """What the list page's New dashboard form needs: the scopes this role may create, and their teams."""
    scopes = dashboards.creatable_scopes(login.user)
    return {
        "new_form": form or forms.blank_new(),
        "new_scopes": {scope: SCOPE_NAMES[scope] for scope in scopes},
        "new_teams": team_choices(login) if "team" in scopes else {},
    }


@bp.get("/dashboards/<dashboard_id>")
@signed_in()
@per_person
def dashboard(dashboard_id: str) -> str:
    """One dashboard: every widget with the figures GET /api/dashboards/<id>/data gives this person."""
    login = current_viewer()
    try:
        data = dashboards.dashboard_data(
            login.user, dashboard_id, datetime.now(UTC), services().settings["metrics_max_range_days"]
        )
    except errors.NotFound:
        raise NotFound("No dashboard of yours has this address: it was deleted, or is not shared with you.") from None
    layout = {widget["id"]: widget for widget in data["dashboard"]["layout"]}
    widgets = sorted(
        (_shown(entry, layout[entry["id"]]) for entry in data["widgets"]),
        key=lambda w: (w["widget"]["position"]["y"], w["widget"]["position"]["x"]),
    )
    return render_template(
        "pages/dashboard.html",
        chart_js=CHART_JS,
        board=data["dashboard"],
        widgets=widgets,
        live={
            "dashboard_id": data["dashboard"]["id"],
            # Where new data is heard of at once (dashboard_update follows every ws_dashboard_interval_seconds).
            "data_room": "org" if login.role == "admin" else "user:" + login.user.id,
            "widgets": data["widgets"],
        },
        scope_names=SCOPE_NAMES,
        teams=_team_names(login.organization.id),
        may_edit=dashboards.may_manage(login.user, data["dashboard"]),
    )


def _shown(entry: dict[str, Any], widget: dict[str, Any]) -> dict[str, Any]:
    """A widget's entry with what the template needs: its layout, labels, and what its series counts.

    A percentile's series counts calls (the API's series_metric), so its charts and tables do too.
    """
    series_metric = entry["metric"]
    if entry.get("data", {}).get("series_metric"):
        series_metric = "agents." + entry["data"]["series_metric"]
    return {
        **entry,
        "widget": widget,
        "label": metric_label(entry["metric"]),
        "series_metric": series_metric,
        "series_label": metric_label(series_metric),
    }


@bp.post("/live/ticket")
@signed_in()
@per_person
def live_ticket() -> ResponseReturnValue:
    """A single-use ticket for /ws with this person's rights, for the page's script (X-CSRF-Token header)."""
    login = current_viewer()
    seconds = services().settings["ws_ticket_seconds"]
    ticket = issue_ticket(login.user, login.session_id, seconds)
    return jsonify({"ticket": ticket, "expires_in": seconds, "url": f"/ws?ticket={ticket}"}), 201


BROWSER_SESSION: list[dict[str, list[str]]] = [{"browserSession": []}]
SIGN_IN_FIRST = {"303": "Nobody signed in: to the sign-in page, then back", "429": "Too many requests (a page)"}
TICKET_PAGE = _html_page(
    "A single-use /ws ticket for a page's script: the session cookie and the X-CSRF-Token header",
    BROWSER_SESSION,
    {
        "303": "Nobody signed in: to the sign-in page",
        "403": "No X-CSRF-Token of this browser, or sent from another site (a page)",
        "413": "Body too large (a page)",
        "429": "Too many requests (a page)",
    },
)
PATHS: dict[str, dict[str, Any]] = {
    "/dashboards": {
        "get": _html_page(
            "The dashboards you can see, as GET /api/dashboards lists them",
            BROWSER_SESSION,
            {"200": "The list", **SIGN_IN_FIRST},
        )
    },
    "/dashboards/{dashboard_id}": {
        "get": _html_page(
            "One dashboard, every widget drawn with your figures and kept current over /ws",
            BROWSER_SESSION,
            {"200": "The dashboard", "404": "No dashboard of yours has this id (a page)", **SIGN_IN_FIRST},
        ),
        "parameters": [{"name": "dashboard_id", "in": "path", "required": True, "schema": {"type": "string"}}],
    },
    "/live/ticket": {
        "post": {
            **TICKET_PAGE,
            "responses": {
                "201": {
                    "description": "The ticket, as POST /api/ws/ticket answers it",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/WsTicket"}}},
                },
                **TICKET_PAGE["responses"],
            },
        }
    },
}
