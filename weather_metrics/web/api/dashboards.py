"""/api/dashboards: list, read, create, update and delete dashboards, and their widgets' data."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import jsonify, request
from flask.typing import ResponseReturnValue

from weather_metrics import dashboards
from weather_metrics.web.api.blueprint import bp
from weather_metrics.web.api.dashboard_schemas import (
    DashboardCreateSchema,
    DashboardDataSchema,
    DashboardFiltersSchema,
    DashboardQuerySchema,
    DashboardSchema,
    DashboardsSchema,
    DashboardUpdateSchema,
    DashboardWidgetSchema,
    WidgetPositionSchema,
)
from weather_metrics.web.auth import authenticated, current_user
from weather_metrics.web.bodies import json_body, load
from weather_metrics.web.openapi import RATE_LIMITED, TOO_LARGE, UNAUTHORIZED, operation, path_id, without
from weather_metrics.web.services import services


@bp.get("/dashboards")
@authenticated()
def list_dashboards() -> ResponseReturnValue:
    """Dashboards the caller can see: their own, their teams' and the organization's."""
    query = load(DashboardQuerySchema(), request.args.to_dict())
    found = dashboards.list_dashboards(current_user(), query.get("scope"), query["default_only"])
    return jsonify({"dashboards": [dashboards.dashboard_view(d) for d in found]})


@bp.post("/dashboards")
@authenticated()
def create_dashboard() -> ResponseReturnValue:
    """Create a dashboard (team scope: admins and the team's managers; organization: admins)."""
    dashboard = dashboards.create_dashboard(current_user(), json_body(DashboardCreateSchema()))
    return jsonify(dashboards.dashboard_view(dashboard)), 201


@bp.get("/dashboards/<dashboard_id>")
@authenticated()
def get_dashboard(dashboard_id: str) -> ResponseReturnValue:
    """One dashboard the caller can see."""
    return jsonify(dashboards.dashboard_view(dashboards.find_dashboard(current_user(), dashboard_id)))


@bp.put("/dashboards/<dashboard_id>")
@authenticated()
def update_dashboard(dashboard_id: str) -> ResponseReturnValue:
    """Change some of a dashboard's fields."""
    changes = json_body(DashboardUpdateSchema())
    return jsonify(dashboards.dashboard_view(dashboards.update_dashboard(current_user(), dashboard_id, changes)))


@bp.delete("/dashboards/<dashboard_id>")
@authenticated()
def delete_dashboard(dashboard_id: str) -> ResponseReturnValue:
    """Delete a dashboard."""
    dashboards.delete_dashboard(current_user(), dashboard_id)
    return "", 204


@bp.get("/dashboards/<dashboard_id>/data")
@authenticated()
def dashboard_data(dashboard_id: str) -> ResponseReturnValue:
    """Every widget's data, limited to what the caller may see."""
    max_days = services().settings["metrics_max_range_days"]
    return jsonify(dashboards.dashboard_data(current_user(), dashboard_id, datetime.now(UTC), max_days))


# OpenAPI, merged into /openapi.json by web/docs.py.
TAG = "Dashboards"
_ERRORS = {
    "400": "Validation failed: details names fields by path, such as layout.2.metric",
    "403": "Not allowed for this dashboard scope",
    "404": "Not found, or not visible to you",
    **UNAUTHORIZED,
    **RATE_LIMITED,
}
_READ_ERRORS = without(_ERRORS, "400", "403")


def _op(summary: str, ok: str, answer: str | None, errors: dict[str, str], **extra: Any) -> dict[str, Any]:
    return operation(summary, TAG, ok, answer, errors, **extra)


_DASHBOARD_ID = path_id("dashboard_id", "dashboard")
PATHS: dict[str, dict[str, Any]] = {
    "/api/dashboards": {
        "get": _op(
            "Dashboards you can see: yours, your teams' (admins: all teams') and the organization's",
            "200 The dashboards, by name",
            "Dashboards",
            {"400": "Bad query parameter", **UNAUTHORIZED, **RATE_LIMITED},
            parameters=[{"in": "query", "schema": DashboardQuerySchema}],
        ),
        "post": _op(
            "Create a dashboard (user: anyone; team: admins and the team's managers; organization: admins)",
            "201 The new dashboard",
            "Dashboard",
            {**_ERRORS, **TOO_LARGE},
            body="DashboardCreate",
        ),
    },
    "/api/dashboards/{dashboard_id}": {
        "get": _op("One dashboard", "200 The dashboard", "Dashboard", _READ_ERRORS),
        "put": _op(
            "Update a dashboard (same rules as creating it)",
            "200 The changed dashboard",
            "Dashboard",
            {**_ERRORS, **TOO_LARGE},
            body="DashboardUpdate",
        ),
        "delete": _op(
            "Delete a dashboard (same rules as creating it)",
            "204 Deleted",
            None,
            without(_ERRORS, "400"),
        ),
        "parameters": [_DASHBOARD_ID],
    },
    "/api/dashboards/{dashboard_id}/data": {
        "get": _op(
            "The dashboard and each widget's data, limited to what you may see; "
            "a widget you may not see gets an error entry",
            "200 The dashboard and its widgets' data",
            "DashboardData",
            _READ_ERRORS,
        ),
        "parameters": [_DASHBOARD_ID],
    },
}


COMPONENTS: dict[str, Any] = {  # nested schemas first, so the bodies refer to them by name
    "DashboardFilters": DashboardFiltersSchema,
    "WidgetPosition": WidgetPositionSchema,
    "DashboardWidget": DashboardWidgetSchema,
    "DashboardCreate": DashboardCreateSchema,
    "DashboardUpdate": DashboardUpdateSchema,
    "Dashboard": DashboardSchema,
    "Dashboards": DashboardsSchema,
    "DashboardData": DashboardDataSchema,
}
