"""The organization surface: /api. One module per resource; each registers its routes on `blueprint.bp`."""

from __future__ import annotations

from weather_metrics.web.api import (
    alerts,
    analytics,
    auth,
    dashboards,
    ingest,
    keys,
    metrics,
    organization,
    reports,
    teams,
    users,
    ws,
)
from weather_metrics.web.api.blueprint import bp

ROUTE_MODULES = (alerts, analytics, auth, dashboards, ingest, keys, metrics, organization, reports, teams, users, ws)
__all__ = ["ROUTE_MODULES", "bp"]
