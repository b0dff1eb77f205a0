"""/api/analytics: placeholder, filled in by the analytics work."""

from __future__ import annotations

from typing import Any

PATHS: dict[str, dict[str, Any]] = {}
COMPONENTS: dict[str, Any] = {}
