"""Public pages: the /v1/stats figures as server-rendered HTML, under the pages' strict CSP."""

from __future__ import annotations

from weather_metrics.web.pages import stats
from weather_metrics.web.pages.blueprint import bp, compile_templates, error_page, wants_page

ROUTE_MODULES = (stats,)
__all__ = ["ROUTE_MODULES", "bp", "compile_templates", "error_page", "wants_page"]
