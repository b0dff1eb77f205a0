"""/explore/...: agent and productivity metrics, productivity trends and team comparison, as the API gives them.

Each page reads its filters from a GET form (so its address can be shared), checks them with the
API's own schema or parsers, narrows the viewer's scope as the API narrows it (a user or team
outside it is 403, one of no organization of theirs 404) and calls the API's query function: the
figures are the ones GET /api/metrics/... or /api/analytics/... gives the same person. A refused
filter comes back as the form, 400, with the API's message beside its field.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import render_template
from flask.typing import ResponseReturnValue

from weather_metrics.core.errors import ServiceError
from weather_metrics.core.vocabulary import AGGREGATIONS
from weather_metrics.query import analytics, org_metrics, periods
from weather_metrics.query.org_metrics import org_zone
from weather_metrics.query.scope import Scope, narrow, scope_for
from weather_metrics.web.api.analytics import COMPARISON_PARAMS, TREND_PARAMS, check_params
from weather_metrics.web.api.metrics import AgentQuerySchema, ProductivityQuerySchema, scope_and_window
from weather_metrics.web.pages import explore_figures as shown
from weather_metrics.web.pages.blueprint import bp
from weather_metrics.web.pages.dashboards import per_person
from weather_metrics.web.pages.sessions import current_viewer, signed_in
from weather_metrics.web.pages.stats import CHART_JS
from weather_metrics.web.services import services

COMPARING_ROLES = ("admin", "manager")  # as GET /api/analytics/team-comparison


@bp.app_template_filter("local_day")
def local_day(stamp: str, zone: str, end: bool = False) -> str:
    """A window's UTC bound as the day it falls on in the organization's zone; an end (excluded) the day before."""
    moment = datetime.fromisoformat(stamp).astimezone(ZoneInfo(zone))
    return (moment - timedelta(microseconds=1) if end else moment).strftime("%Y-%m-%d")


@bp.app_template_filter("number")
def number(value: float | None) -> str:
    """A sum or count as the API gives it, with thousands separators: 13.0 -> "13", 2.5 -> "2.5"."""
    if value is None:
        return "–"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}".rstrip("0")


@bp.app_template_filter("team_figure")
def team_figure(value: float | None, metric_type: str) -> str:
    """A team comparison's figure: a rate as a percentage, a duration in ms, anything else as a number."""
    kind = shown.metric_kind(metric_type)
    if value is None or kind == "count":
        return number(value)
    return f"{value * 100:.1f} %" if kind == "percent" else f"{value:,.0f} ms"


bp.add_app_template_global(shown.metric_name, "metric_name")


def _max_days() -> int:
    return int(services().settings["metrics_max_range_days"])


def _page(
    template: str, scope: Scope, values: dict[str, Any], answer: dict[str, Any] | None, **context: Any
) -> dict[str, Any]:
    """What every explorer's template gets: the filters as sent, the choices, the answer (None when refused)."""
    login = current_viewer()
    return {
        "template": f"pages/explore_{template}.html",
        "chart_js": CHART_JS,
        "values": values,
        "answer": answer,
        "teams": shown.team_choices(login, scope),
        "users": shown.user_choices(login, scope),
        "aggregations": {name: name for name in AGGREGATIONS},
        "comparing": login.role in COMPARING_ROLES,
        "problems": {},
        "refused": None,
        **context,
    }


def _answer(page: dict[str, Any]) -> ResponseReturnValue:
    return render_template(page.pop("template"), **page)


def _refused(page: dict[str, Any], exc: ServiceError) -> ResponseReturnValue:
    """The form again, with the API's message, each problem beside its field, and the API's status."""
    status, message, problems = shown.refusal(exc)
    page.update(answer=None, refused=message, problems=problems)
    return render_template(page.pop("template"), **page), status


@bp.get("/explore/agents")
@signed_in()
@per_person
def explore_agents() -> ResponseReturnValue:
    """Agent usage and durations: what GET /api/metrics/agents gives this person for the same filters."""
    viewer_scope = scope_for(current_viewer().user)
    values = shown.filled()
    page = _page("agents", viewer_scope, values, None)
    try:
        query = shown.checked(AgentQuerySchema(), values)
        scope, window = scope_and_window(viewer_scope, query)
        answer = org_metrics.agent_metrics(
            scope,
            window,
            agent_name=query.get("agent_name"),
            success_only=query["success_only"],
            page=query["page"],
            limit=query["limit"],
        )
    except ServiceError as exc:
        return _refused(page, exc)
    return _answer({**page, "answer": answer, "charts": shown.agent_charts(answer)})


@bp.get("/explore/productivity")
@signed_in()
@per_person
def explore_productivity() -> ResponseReturnValue:
    """Productivity metrics: what GET /api/metrics/productivity gives this person for the same filters."""
    viewer_scope = scope_for(current_viewer().user)
    values = shown.filled()
    page = _page("productivity", viewer_scope, values, None)
    try:
        query = shown.checked(ProductivityQuerySchema(), values)
        scope, window = scope_and_window(viewer_scope, query)
        answer = org_metrics.productivity_metrics(
            scope, window, metric_type=query.get("metric_type"), page=query["page"], limit=query["limit"]
        )
    except ServiceError as exc:
        return _refused(page, exc)
    return _answer({**page, "answer": answer, "charts": [shown.productivity_chart(answer)]})


@bp.get("/explore/trends")
@signed_in()
@per_person
def explore_trends() -> ResponseReturnValue:
    """Productivity trends with their insights: what GET /api/analytics/productivity-trends gives this person."""
    viewer_scope = scope_for(current_viewer().user)
    page = _page("trends", viewer_scope, shown.filled(), None)
    try:
        check_params(TREND_PARAMS)
        trend = periods.trend_windows(
            shown.arg("start_date"),
            shown.arg("end_date"),
            shown.arg("aggregation"),
            shown.arg("comparison_period"),
            org_zone(viewer_scope.organization_id),
            datetime.now(UTC),
            _max_days(),
        )
        scope = narrow(viewer_scope, team_id=shown.arg("team_id"))
        answer = analytics.productivity_trends(scope, trend.window, trend.comparison, trend.label, trend.per_day)
    except ServiceError as exc:
        return _refused(page, exc)
    return _answer({**page, "answer": answer, "charts": [shown.trend_chart(answer)]})


@bp.get("/explore/teams")
@signed_in(*COMPARING_ROLES)
@per_person
def explore_teams() -> ResponseReturnValue:
    """Team comparison: what GET /api/analytics/team-comparison gives this person (admins and managers)."""
    viewer_scope = scope_for(current_viewer().user)
    chosen = shown.arg_list("team_ids")
    page = _page("teams", viewer_scope, shown.filled(), None, chosen=chosen)
    try:
        check_params(COMPARISON_PARAMS)
        window = periods.comparison_range(
            shown.arg("date_range"),
            shown.arg("start_date"),
            shown.arg("end_date"),
            org_zone(viewer_scope.organization_id),
            datetime.now(UTC),
            _max_days(),
        )
        metric_types = analytics.metric_type_list(shown.arg_list("metric_types"))
        teams = analytics.teams_to_compare(viewer_scope, chosen)
        answer = analytics.team_comparison(viewer_scope, teams, metric_types, window)
    except ServiceError as exc:
        return _refused(page, exc)
    page["values"]["metric_types"] = ", ".join(shown.arg_list("metric_types"))
    return _answer({**page, "answer": answer, "charts": shown.team_charts(answer)})


# OpenAPI, merged into /openapi.json by web/docs.py: pages answer HTML, their errors too.
BROWSER_SESSION: list[dict[str, list[str]]] = [{"browserSession": []}]
HTML = {"text/html": {"schema": {"type": "string"}}}
SEEN = {
    "400": "A filter the API refuses: the form again, the API's message beside the field",
    "403": "A user or team outside your scope: the form again, saying so",
    "404": "A user or team of no organization of yours: the form again, saying so",
    "303": "Nobody signed in: to the sign-in page, then back",
    "429": "Too many requests",
}


def _doc(summary: str, api: str, parameters: list[dict[str, Any]], **answers: str) -> dict[str, Any]:
    responses = {
        code: {"description": why, "content": HTML}
        for code, why in {"200": f"The figures {api} gives you", **SEEN, **answers}.items()
    }
    return {
        "get": {
            "summary": summary,
            "tags": ["Pages"],
            "security": BROWSER_SESSION,
            "responses": responses,
            "parameters": parameters,
        }
    }


def _params(*names: str) -> list[dict[str, Any]]:
    return [{"name": name, "in": "query", "schema": {"type": "string"}} for name in names]


PATHS: dict[str, dict[str, Any]] = {
    "/explore/agents": _doc(
        "Agent metrics explorer: totals, per agent, a chart of the periods",
        "GET /api/metrics/agents",
        [{"in": "query", "schema": AgentQuerySchema}],
    ),
    "/explore/productivity": _doc(
        "Productivity metrics explorer: totals per type, a chart of the periods",
        "GET /api/metrics/productivity",
        [{"in": "query", "schema": ProductivityQuerySchema}],
    ),
    "/explore/trends": _doc(
        "Productivity trends with their insights",
        "GET /api/analytics/productivity-trends",
        _params(*TREND_PARAMS),
    ),
    "/explore/teams": _doc(
        "Team comparison (admins and managers)",
        "GET /api/analytics/team-comparison",
        _params("team_ids", "metric_types", "date_range", "start_date", "end_date"),
        **{"403": "Developers, or a team outside your scope (a page)"},
    ),
}
