"""Dashboards: who sees and changes which, one default per scope, and each widget's data.

Free of HTTP: the /api views pass in the caller and already-validated bodies. A dashboard
is personal (scope "user"), shared with a team, or shared with the whole organization;
its data is always computed for the viewer, never for the owner.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from peewee import Expression

from weather_metrics.accounts.organizations import find_team
from weather_metrics.core.errors import NotFound, OutOfScope, QueryError, UnknownTarget
from weather_metrics.core.times import iso
from weather_metrics.core.vocabulary import STANDARD_PRODUCTIVITY_TYPES
from weather_metrics.query import org_metrics
from weather_metrics.query.scope import Scope, narrow, scope_for
from weather_metrics.query.windows import Window, parse_window
from weather_metrics.store.db import write_transaction
from weather_metrics.store.models import Dashboard, TeamMember, User

SCOPES = ("user", "team", "organization")
MAX_WIDGET_PERIODS = 1000
WIDGET_TYPES = ("line", "bar", "area", "pie", "number", "table")
RANGES = {"24h": 1, "7d": 7, "30d": 30, "90d": 90}  # a range is the last N days up to now
DATE_KEYS = ("start_date", "end_date", "range")
DEFAULT_DAYS = RANGES["7d"]
PERCENTILE_METRICS = ("p50_duration_ms", "p95_duration_ms", "p99_duration_ms")


class Forbidden(OutOfScope):
    """The caller may see the dashboard (or team) but not make this change."""


class InvalidDashboard(QueryError):
    """A body that is well-formed but names something that does not exist: per-field details."""


def _now() -> int:
    return int(time.time())


def _member_teams(user: User) -> Any:
    return TeamMember.select(TeamMember.team_id).where(TeamMember.user == user.id)


def _visible_to(user: User) -> Expression:
    """Own personal dashboards, those of the user's teams (admins: every team) and the organization's."""
    team = Dashboard.scope == "team"
    if user.role != "admin":
        team &= Dashboard.team.in_(_member_teams(user))
    own = (Dashboard.scope == "user") & (Dashboard.owner == user.id)
    return (Dashboard.organization == user.organization_id) & (own | team | (Dashboard.scope == "organization"))


def list_dashboards(user: User, scope: str | None = None, default_only: bool = False) -> list[Dashboard]:
    """The dashboards `user` can see, optionally of one scope or only defaults."""
    query = Dashboard.select().where(_visible_to(user))
    if scope is not None:
        query = query.where(Dashboard.scope == scope)
    if default_only:
        query = query.where(Dashboard.is_default == True)  # noqa: E712 - peewee expression
    return list(query.order_by(Dashboard.name, Dashboard.created_at, Dashboard.id))


def find_dashboard(user: User, dashboard_id: str) -> Dashboard:
    """A dashboard `user` can see; NotFound otherwise (also for another organization's)."""
    dashboard = Dashboard.get_or_none((Dashboard.id == dashboard_id) & _visible_to(user))
    if dashboard is None:
        raise NotFound(f"Dashboard {dashboard_id} not found")
    return dashboard


def _check_may_manage(user: User, scope: str, team_id: str | None, owner_id: str) -> None:
    """Forbidden unless `user` may create or change a dashboard of this scope, team and owner."""
    if scope == "user" and owner_id != user.id:
        raise Forbidden("Only its owner may keep a personal dashboard")
    if scope == "organization" and user.role != "admin":
        raise Forbidden("Only admins may change organization dashboards")
    if scope == "team" and user.role != "admin":
        member = TeamMember.select().where((TeamMember.team == team_id) & (TeamMember.user == user.id)).exists()
        if user.role != "manager" or not member:
            raise Forbidden("Only admins and managers of the team may change its dashboards")


def may_manage(user: User, view: dict[str, Any]) -> bool:
    """Whether `user` may change or delete a dashboard (its dashboard_view), by the rule PUT and DELETE apply."""
    try:
        _check_may_manage(user, view["scope"], view["team_id"], view["owner_id"])
    except Forbidden:
        return False
    return True


def creatable_scopes(user: User) -> tuple[str, ...]:
    """The scopes `user` may create a dashboard in: team for admins and managers (of a team they are in)."""
    if user.role == "admin":
        return SCOPES
    return ("user", "team") if user.role == "manager" else ("user",)


def _team_for(user: User, scope: str, team_id: str | None) -> str | None:
    """The team id a dashboard of `scope` keeps: required for team scope, refused otherwise."""
    if scope != "team":
        if team_id is not None:
            raise InvalidDashboard("Request validation failed", {"team_id": "Only allowed when scope is team"})
        return None
    if team_id is None:
        raise InvalidDashboard("Request validation failed", {"team_id": "Required when scope is team"})
    return str(find_team(user.organization_id, team_id).id)


def known_metrics(org_id: str) -> set[str]:
    """Every metric a widget may show in this organization."""
    agents = {f"agents.{name}" for name in org_metrics.AGENT_METRICS}
    types = set(STANDARD_PRODUCTIVITY_TYPES) | set(org_metrics.metric_types(org_id))
    return agents | {f"productivity.{kind}" for kind in types}


def _check_metrics(org_id: str, layout: list[dict[str, Any]]) -> None:
    known = known_metrics(org_id)
    problems = {
        f"layout.{i}.metric": "Unknown metric; use agents.<metric> or productivity.<type>"
        for i, widget in enumerate(layout)
        if widget["metric"] not in known
    }
    if problems:
        raise InvalidDashboard("Request validation failed", problems)


def _clear_other_defaults(dashboard: Dashboard) -> None:
    """Unset the default of the dashboard's scope (per owner, team or organization) but this one."""
    same = (
        (Dashboard.organization == dashboard.organization_id)
        & (Dashboard.scope == dashboard.scope)
        & (Dashboard.id != dashboard.id)
    )
    if dashboard.scope == "user":
        same &= Dashboard.owner == dashboard.owner_id
    elif dashboard.scope == "team":
        same &= Dashboard.team == dashboard.team_id
    Dashboard.update(is_default=False).where(same & (Dashboard.is_default == True)).execute()  # noqa: E712


def _store(dashboard: Dashboard, force_insert: bool = False) -> Dashboard:
    """Save, first unsetting the scope's old default; call inside write_transaction()."""
    if dashboard.is_default:
        _clear_other_defaults(dashboard)
    dashboard.save(force_insert=force_insert)
    return dashboard


def create_dashboard(user: User, data: dict[str, Any]) -> Dashboard:
    """A new dashboard owned by `user`, after the permission and metric checks."""
    scope = data.get("scope", "user")
    now = _now()
    with write_transaction():  # the checks, the old default's reset and the insert as one write
        team_id = _team_for(user, scope, data.get("team_id"))
        _check_may_manage(user, scope, team_id, user.id)
        _check_metrics(user.organization_id, data.get("layout", []))
        dashboard = Dashboard(
            id=str(uuid.uuid4()),
            organization=user.organization_id,
            owner=user.id,
            scope=scope,
            team=team_id,
            name=data["name"],
            description=data.get("description", ""),
            layout=json.dumps(data.get("layout", [])),
            filters=json.dumps(data.get("filters", {})),
            is_default=data.get("is_default", False),
            created_at=now,
            updated_at=now,
        )
        return _store(dashboard, force_insert=True)


def update_dashboard(user: User, dashboard_id: str, changes: dict[str, Any]) -> Dashboard:
    """Apply a partial update; a change of scope or team is checked as if creating there."""
    # Read and written in one transaction: a stale copy saved back could revive an old default.
    with write_transaction():
        dashboard = find_dashboard(user, dashboard_id)
        _check_may_manage(user, dashboard.scope, dashboard.team_id, dashboard.owner_id)
        scope = changes.get("scope", dashboard.scope)
        if "team_id" in changes:
            team_id = changes["team_id"]
        else:  # a team dashboard keeps its team; one leaving team scope drops it
            team_id = dashboard.team_id if scope == "team" else None
        team_id = _team_for(user, scope, team_id)
        _check_may_manage(user, scope, team_id, dashboard.owner_id)
        if "layout" in changes:
            _check_metrics(user.organization_id, changes["layout"])
        _apply(dashboard, scope, team_id, changes)
        return _store(dashboard)


def change_dashboard(
    user: User, dashboard_id: str, change: Callable[[dict[str, Any]], dict[str, Any] | None]
) -> Dashboard | None:
    """Read the dashboard and write `change(view)`'s changes in one write transaction, so no other change falls
    between the read and the write (None writes nothing; an exception from `change` writes nothing either)."""
    with write_transaction():
        changes = change(dashboard_view(find_dashboard(user, dashboard_id)))
        return None if changes is None else update_dashboard(user, dashboard_id, changes)


def _apply(dashboard: Dashboard, scope: str, team_id: str | None, changes: dict[str, Any]) -> None:
    """Copy validated changes onto the row (layout and filters as JSON text)."""
    dashboard.scope, dashboard.team_id = scope, team_id
    for name in ("name", "description", "is_default"):
        if name in changes:
            setattr(dashboard, name, changes[name])
    for name in ("layout", "filters"):
        if name in changes:
            setattr(dashboard, name, json.dumps(changes[name]))
    dashboard.updated_at = _now()


def delete_dashboard(user: User, dashboard_id: str) -> None:
    with write_transaction():
        dashboard = find_dashboard(user, dashboard_id)
        _check_may_manage(user, dashboard.scope, dashboard.team_id, dashboard.owner_id)
        dashboard.delete_instance()


def dashboard_view(dashboard: Dashboard) -> dict[str, Any]:
    return {
        "id": dashboard.id,
        "name": dashboard.name,
        "description": dashboard.description,
        "scope": dashboard.scope,
        "team_id": dashboard.team_id,
        "owner_id": dashboard.owner_id,
        "layout": json.loads(dashboard.layout),
        "filters": json.loads(dashboard.filters),
        "is_default": bool(dashboard.is_default),
        "created_at": iso(dashboard.created_at),
        "updated_at": iso(dashboard.updated_at),
    }


def merged_filters(dashboard_filters: dict[str, Any], widget_filters: dict[str, Any]) -> dict[str, Any]:
    """The widget's filters over the dashboard's; a widget's dates replace all of the dashboard's."""
    base = dict(dashboard_filters)
    if any(key in widget_filters for key in DATE_KEYS):
        for key in DATE_KEYS:  # a dashboard range beside a widget start_date would be ambiguous
            base.pop(key, None)
    return {**base, **widget_filters}


def _window(filters: dict[str, Any], now: datetime, max_days: int, org_id: str) -> Window:
    return parse_window(
        filters.get("start_date"),
        filters.get("end_date"),
        filters.get("aggregation"),
        org_metrics.org_zone(org_id),
        now,
        max_days,
        default_days=RANGES.get(filters.get("range", ""), DEFAULT_DAYS),
        default_aggregation="day",
    )


def _agent_data(name: str, result: dict[str, Any]) -> dict[str, Any]:
    """One agent figure: its total, its series (calls for percentiles) and per-agent values."""
    series_metric = "calls" if name in PERCENTILE_METRICS else name
    return {
        "window": result["window"],
        "value": result["totals"][name],
        "series_metric": series_metric,
        "series": [{"period": row["period"], "value": row[series_metric]} for row in result["series"]],
        "agents": [{"agent_name": row["agent_name"], "value": row[name]} for row in result["agents"]],
    }


def _productivity_data(kind: str, result: dict[str, Any]) -> dict[str, Any]:
    """One productivity type: its totals and the series of its sum."""
    totals = next((row for row in result["totals"] if row["metric_type"] == kind), None)
    empty = {"samples": 0, "sum": 0, "avg": None, "min": None, "max": None}
    return {
        "window": result["window"],
        "totals": {key: totals[key] for key in empty} if totals else empty,
        "series": [
            {"period": row["period"], "value": row["metrics"].get(kind, {}).get("sum", 0)} for row in result["series"]
        ],
    }


def _metric_data(metric: str, scope: Scope, window: Window, filters: dict[str, Any], memo: dict) -> dict[str, Any]:
    """A widget's data; widgets asking the same question share one query (`memo`)."""
    family, _, name = metric.partition(".")
    every_period = max(1, len(window.periods()))  # a chart needs the whole series, not a page of it
    if every_period > MAX_WIDGET_PERIODS:  # 50 hourly widgets over a year would be a 20 MB answer
        raise QueryError(
            "Too many periods", {"aggregation": f"More than {MAX_WIDGET_PERIODS} periods; use a coarser aggregation"}
        )
    if family == "agents":
        key: tuple = ("agents", scope, window, filters.get("agent_name"), bool(filters.get("success_only")))
        if key not in memo:
            memo[key] = org_metrics.agent_metrics(
                scope, window, agent_name=key[3], success_only=key[4], page=1, limit=every_period
            )
        return _agent_data(name, memo[key])
    key = ("productivity", scope, window, name)
    if key not in memo:
        memo[key] = org_metrics.productivity_metrics(scope, window, metric_type=name, page=1, limit=every_period)
    return _productivity_data(name, memo[key])


def _widget_data(
    widget: dict[str, Any], filters: dict[str, Any], viewer: Scope, now: datetime, max_days: int, memo: dict
) -> dict[str, Any]:
    """{"id", "type", "metric"} with "data", or an "error" the viewer may be shown."""
    entry: dict[str, Any] = {"id": widget["id"], "type": widget["type"], "metric": widget["metric"]}
    try:
        scope = narrow(viewer, user_id=filters.get("user_id"), team_id=filters.get("team_id"))
        window = _window(filters, now, max_days, viewer.organization_id)
        entry["data"] = _metric_data(widget["metric"], scope, window, filters, memo)
    except OutOfScope as exc:
        entry["error"] = {"status": 403, "message": str(exc), "details": {}}
    except UnknownTarget as exc:
        entry["error"] = {"status": 404, "message": str(exc), "details": {}}
    except QueryError as exc:
        entry["error"] = {"status": 400, "message": str(exc), "details": exc.details}
    return entry


def dashboard_data(viewer: User, dashboard_id: str, now: datetime, max_days: int) -> dict[str, Any]:
    """The dashboard and every widget's data, limited to what `viewer` may see."""
    dashboard = find_dashboard(viewer, dashboard_id)
    view = dashboard_view(dashboard)
    scope = scope_for(viewer)
    memo: dict[tuple, dict[str, Any]] = {}
    widgets = [
        _widget_data(w, merged_filters(view["filters"], w.get("filters", {})), scope, now, max_days, memo)
        for w in view["layout"]
    ]
    return {"dashboard": view, "widgets": widgets}
