"""The WebSocket surface /ws (flask-sock): admission before the upgrade, the connection after it."""

from __future__ import annotations

from weather_metrics.web.ws import admission, connection
from weather_metrics.web.ws.blueprint import bp

ROUTE_MODULES = (admission, connection)
__all__ = ["ROUTE_MODULES", "bp"]
