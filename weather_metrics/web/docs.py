"""OpenAPI 3 document at /openapi.json, gathered from each surface's modules; web/docs_page.py draws it at /docs.

Every route module (and the schema modules beside it) lists its operations in PATHS and the
schemas they name in COMPONENTS; this module puts them together under TAGS.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from types import ModuleType
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask, Response, jsonify

from weather_metrics.web import api, docs_page, mcp, pages
from weather_metrics.web.api import account_schemas, ingest_schemas
from weather_metrics.web.api import schemas as api_schemas
from weather_metrics.web.openapi import API_ERROR, API_ERROR_SCHEMA, PUBLIC, json_content
from weather_metrics.web.v1 import schemas as v1

# The groups of /docs, in the order it shows them.
TAGS = [
    {"name": "Telemetry (/v1)", "description": "Anonymous tool-call events from weather MCP servers"},
    {"name": "Stats (/v1)", "description": "Public aggregates of those events over 7, 30 or 90 days"},
    {"name": "Auth", "description": "Log in (password or SSO), refresh and end sessions: JWT bearer tokens"},
    {"name": "Users", "description": "People of your organization and their roles"},
    {"name": "Teams", "description": "Teams, and who is in them as lead or member"},
    {"name": "API keys", "description": "Keys MCP servers send metrics with (admins)"},
    {"name": "Organization", "description": "Your organization's name and time zone"},
    {"name": "Metrics", "description": "Agent executions and productivity metrics: send them, read them in your scope"},
    {"name": "Analytics", "description": "Productivity trends and team comparisons"},
    {"name": "Dashboards", "description": "Saved dashboards, personal or shared, and their widgets' data"},
    {"name": "Reports", "description": "Report exports (CSV, XLSX, PDF) built in the background"},
    {"name": "Alerts", "description": "Alert rules and the history of their alerts (admins, managers)"},
    {"name": "MCP", "description": "For MCP servers, with an organization API key: collection and its settings"},
    {"name": "Webhooks", "description": "Webhooks of an organization and their delivery logs (API key)"},
    {"name": "Live updates", "description": "A WebSocket of live metric, dashboard and alert events"},
    {"name": "Service", "description": "Health, status, Prometheus metrics and this document"},
    {"name": "Pages", "description": "The /v1 statistics as HTML pages (setting public_pages), and signing in to them"},
]

SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token from POST /api/auth/login",
    },
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "An organization API key"},
    "browserSession": {
        "type": "apiKey",
        "in": "cookie",
        "name": "weather_metrics_session",
        "description": "A browser's sign-in (POST /sign-in); forms also send its csrf_token",
    },
    "apiKeyBearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "API key",
        "description": "The same API key as Authorization: Bearer wm_...",
    },
}


def _service(summary: str, ok: str, content: dict[str, Any]) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "tags": ["Service"],
            "security": PUBLIC,
            "responses": {"200": {"description": ok, "content": content}},
        }
    }


PATHS: dict[str, dict[str, Any]] = {
    "/metrics": _service(
        "Prometheus metrics (not rate limited)",
        "Prometheus text format",
        {"text/plain": {"schema": {"type": "string"}}},
    ),
    "/openapi.json": _service("This document", "OpenAPI 3", json_content({"type": "object"})),
    "/docs": _service("This document as a page", "HTML", {"text/html": {"schema": {"type": "string"}}}),
}


def _page(summary: str, errors: dict[str, str]) -> dict[str, Any]:
    """An HTML page of /v1/stats figures: its errors are pages too, and it counts against the /v1 read limit."""
    html = {"text/html": {"schema": {"type": "string"}}}
    responses = {code: {"description": why, "content": html} for code, why in {"200": "HTML", **errors}.items()}
    return {
        "summary": summary,
        "tags": ["Pages"],
        "security": PUBLIC,
        "parameters": [v1.PERIOD],
        "responses": responses,
    }


PAGE_ERRORS = {"400": "Bad period (a page)", "429": "Rate limit exceeded (a page)"}
PATHS["/"] = {"get": _page("Statistics of every tool as a page", PAGE_ERRORS)}
PATHS["/tools/{tool_name}"] = {
    "get": _page("One tool's statistics as a page", {**PAGE_ERRORS, "404": "Unknown tool (a page)"}),
    "parameters": [{"name": "tool_name", "in": "path", "required": True, "schema": {"type": "string"}}],
}


def sources() -> Iterable[ModuleType]:
    """The modules that list paths or components, surface by surface."""
    yield v1
    yield from (api_schemas, account_schemas, ingest_schemas)
    yield from api.ROUTE_MODULES
    yield from mcp.ROUTE_MODULES
    yield from pages.ROUTE_MODULES


def build_spec() -> dict[str, Any]:
    """The whole OpenAPI document."""
    spec = APISpec(
        title="weather_metrics",
        version="1.0.0",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={
            "description": "Tool-call analytics for weather MCP servers (/v1), and organization metrics of "
            "AI agents and developer productivity (/api, /mcp, /ws)."
        },
        tags=TAGS,
    )
    paths: dict[str, dict[str, Any]] = {}
    components: dict[str, Any] = {API_ERROR: API_ERROR_SCHEMA}
    for module in sources():
        components.update(getattr(module, "COMPONENTS", {}))
        for path, operations in getattr(module, "PATHS", {}).items():
            paths.setdefault(path, {}).update(operations)
    for name, schema in components.items():
        if isinstance(schema, dict):
            spec.components.schema(name, schema)
        else:
            spec.components.schema(name, schema=schema)
    for name, scheme in SECURITY_SCHEMES.items():
        spec.components.security_scheme(name, scheme)
    for path, operations in {**paths, **PATHS}.items():
        spec.path(
            path=path,
            operations={k: v for k, v in operations.items() if k != "parameters"},
            parameters=operations.get("parameters"),
        )
    return spec.to_dict()


def flask_path(rule: str) -> str:
    """/v1/stats/tool/<tool_name> -> /v1/stats/tool/{tool_name}."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


@functools.cache
def served_spec() -> dict[str, Any]:
    """The document /openapi.json serves, built once per process (it depends on the code alone)."""
    return build_spec()


def init_app(app: Flask) -> None:
    spec = served_spec()

    @app.get("/openapi.json")
    def openapi() -> Response:
        """The OpenAPI document."""
        return jsonify(spec)

    app.register_blueprint(docs_page.bp)
