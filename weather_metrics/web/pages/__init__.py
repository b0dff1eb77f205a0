"""The web pages: the /v1/stats figures, and signing in, as server-rendered HTML under a strict CSP."""

from __future__ import annotations

from weather_metrics.web.pages import (
    account,
    admin,
    admin_keys,
    admin_teams,
    admin_users,
    alerts,
    dashboard_edit,
    dashboard_widgets,
    dashboards,
    explore,
    exports,
    oidc,
    stats,
)
from weather_metrics.web.pages.blueprint import bp, compile_templates, error_page, wants_page

ROUTE_MODULES = (
    account,
    admin,
    admin_keys,
    admin_teams,
    admin_users,
    alerts,
    dashboard_edit,
    dashboard_widgets,
    dashboards,
    explore,
    exports,
    oidc,
    stats,
)
__all__ = ["ROUTE_MODULES", "bp", "compile_templates", "error_page", "wants_page"]
