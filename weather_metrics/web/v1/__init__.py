"""The public analytics surface: /v1 (anonymous ingestion, stats, health, status)."""

from __future__ import annotations

from weather_metrics.web.v1 import events, stats, system
from weather_metrics.web.v1.blueprint import bp

ROUTE_MODULES = (events, stats, system)
__all__ = ["ROUTE_MODULES", "bp"]
