"""What the explorer pages need around the API's answers: the filters a person may pick, and the charts drawn.

No queries of figures here: those are the API's own functions, called by web/pages/explore.py.
"""

from __future__ import annotations

from typing import Any

from flask import request
from marshmallow import Schema, ValidationError

from weather_metrics.accounts.logins import BrowserLogin
from weather_metrics.core.errors import OutOfScope, QueryError, ServiceError, UnknownTarget
from weather_metrics.query.scope import Scope
from weather_metrics.store.models import Team, User
from weather_metrics.web.pages.dashboards import period_label

# The team comparison's agent metrics, as the pages name them (productivity types are named by their type).
AGENT_METRIC_NAMES = {
    "agent_executions": "Agent executions",
    "agent_success_rate": "Agent success rate",
    "agent_avg_duration_ms": "Mean agent duration",
}


def filled() -> dict[str, str]:
    """The query's fields with a value: a GET form sends its empty fields too, and they mean "not given"."""
    return {key: value for key, value in request.args.items() if value != ""}


def arg(name: str) -> str | None:
    """One value of the query, as GET /api/analytics reads it: an empty value counts as not given."""
    return request.args.get(name) or None


def arg_list(name: str) -> list[str]:
    """Comma-separated and repeated values (also as name[]), as GET /api/analytics/team-comparison reads them."""
    values = request.args.getlist(name) + request.args.getlist(name + "[]")
    items = (item.strip() for value in values for item in value.split(","))
    return list(dict.fromkeys(item for item in items if item))


def checked(schema: Schema, args: dict[str, str]) -> dict[str, Any]:
    """The query loaded by the API's schema; QueryError with the first problem of each field, as the API says it."""
    try:
        return schema.load(args)  # type: ignore[no-any-return]
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_query": exc.messages}
        details = {name: str(text[0] if isinstance(text, list) else text) for name, text in messages.items()}
        raise QueryError("Request validation failed", details) from None


def refusal(exc: ServiceError) -> tuple[int, str, dict[str, str]]:
    """The status, message and per-field problems of a refused query: 400, 403 or 404, as the API answers."""
    if isinstance(exc, QueryError):
        return 400, str(exc), exc.details
    if isinstance(exc, OutOfScope):
        return 403, str(exc), {}
    if isinstance(exc, UnknownTarget):
        return 404, str(exc), {}
    raise exc


def team_choices(login: BrowserLogin, scope: Scope) -> dict[str, str]:
    """Names by id of the teams this person may filter by: admins every team, others the teams of their scope."""
    query = Team.select().where(Team.organization == login.organization.id).order_by(Team.name, Team.id)
    if scope.team_ids is not None:
        query = query.where(Team.id.in_(sorted(scope.team_ids)))
    return {team.id: team.name for team in query}


def user_choices(login: BrowserLogin, scope: Scope) -> dict[str, str]:
    """Names by id of the people this person may filter by: admins everyone, managers their teams, a developer self."""
    query = User.select().where(User.organization == login.organization.id).order_by(User.name, User.email)
    if scope.user_ids is not None:
        query = query.where(User.id.in_(sorted(scope.user_ids)))
    return {user.id: f"{user.name} ({user.email})" for user in query}


def metric_kind(metric_type: str) -> str:
    """How a team comparison's metric reads: a rate as a percentage, a duration in ms, else a count."""
    if metric_type == "agent_success_rate":
        return "percent"
    return "ms" if metric_type == "agent_avg_duration_ms" else "count"


def metric_name(metric_type: str) -> str:
    return AGENT_METRIC_NAMES.get(metric_type, metric_type)


def chart(kind: str, type_: str, labels: list[str], datasets: list[dict[str, Any]], title: str) -> dict[str, Any]:
    """A chart's JSON block for static/explore.js: its type, how its values read, labels and datasets."""
    return {"type": type_, "kind": kind, "title": title, "labels": labels, "datasets": datasets}


def _periods(series: list[dict[str, Any]], aggregation: str) -> list[str]:
    return [period_label(point["period"], aggregation) for point in series]


def agent_charts(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """Calls and mean duration of each period of the page, as GET /api/metrics/agents gives them."""
    series, aggregation = answer["series"], answer["window"]["aggregation"]
    labels = _periods(series, aggregation)
    return [
        chart(
            "count",
            "bar",
            labels,
            [
                {"label": "Successes", "key": "successes", "values": [p["successes"] for p in series]},
                {"label": "Failures", "key": "failures", "values": [p["failures"] for p in series]},
            ],
            f"Calls per {aggregation}",
        ),
        chart(
            "ms",
            "line",
            labels,
            [{"label": "Mean duration", "key": "avg_duration_ms", "values": [p["avg_duration_ms"] for p in series]}],
            f"Mean duration per {aggregation}",
        ),
    ]


def productivity_chart(answer: dict[str, Any]) -> dict[str, Any]:
    """The sum of each metric type per period of the page (0 in a period without samples of it)."""
    series, aggregation = answer["series"], answer["window"]["aggregation"]
    datasets = [
        {
            "label": total["metric_type"],
            "key": total["metric_type"],
            "values": [p["metrics"].get(total["metric_type"], {}).get("sum", 0) for p in series],
        }
        for total in answer["totals"]
    ]
    return chart("count", "line", _periods(series, aggregation), datasets, f"Sum per {aggregation}")


def trend_chart(answer: dict[str, Any]) -> dict[str, Any]:
    """Each metric's total per period of the trend's window."""
    aggregation = answer["period"]["aggregation"]
    metrics = answer["metrics"]
    labels = _periods(metrics[0]["series"], aggregation) if metrics else []
    datasets = [
        {"label": metric_name(m["metric_type"]), "key": m["metric_type"], "values": [p["total"] for p in m["series"]]}
        for m in metrics
    ]
    return chart("count", "line", labels, datasets, f"Total per {aggregation}")


def team_charts(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """One bar chart per metric type: each team's figure, in the order of the comparison's teams."""
    names = [team["name"] for team in answer["teams"]]
    return [
        chart(
            metric_kind(metric),
            "bar",
            names,
            [{"label": metric_name(metric), "key": metric, "values": [t["metrics"][metric] for t in answer["teams"]]}],
            metric_name(metric),
        )
        for metric in answer["metric_types"]
    ]
