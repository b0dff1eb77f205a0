"""OpenAPI document at /openapi.json and a readable page at /docs."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    pass
