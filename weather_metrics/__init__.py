"""weather_metrics: a self-hosted metrics and analytics service for MCP servers.

`create_app` lives in factory.py and is imported on first use: a process that needs one part
of the package, such as an export's child process, does not load Flask and every surface with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from weather_metrics.factory import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from weather_metrics import factory

        return getattr(factory, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
