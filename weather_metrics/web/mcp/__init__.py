"""The MCP server surface: /mcp, authenticated by an organization API key."""

from __future__ import annotations

from weather_metrics.web.mcp import collect, config, hooks
from weather_metrics.web.mcp.blueprint import bp

ROUTE_MODULES = (collect, config, hooks)
__all__ = ["ROUTE_MODULES", "bp"]
