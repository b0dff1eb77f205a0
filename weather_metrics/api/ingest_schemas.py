"""Placeholder: the marshmallow contract of ingestion bodies is being written."""

from __future__ import annotations

from typing import Any

COMPONENTS: dict[str, Any] = {}
