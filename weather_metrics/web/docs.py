"""OpenAPI 3 document at /openapi.json, generated from the schemas; web/docs_page.py draws it at /docs."""

from __future__ import annotations

import re
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask, Response, jsonify

from weather_metrics.ingest.events import schemas
from weather_metrics.query.stats import DEFAULT_PERIOD, PERIODS
from weather_metrics.web import docs_page
from weather_metrics.web.api.docs import API_COMPONENTS, API_ERROR_SCHEMA, API_PATHS
from weather_metrics.web.v1 import schemas as answers

PERIOD = {
    "name": "period",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "enum": list(PERIODS), "default": DEFAULT_PERIOD},
    "description": "Days back from today (UTC), plus today",
}


RATE_LIMITED = {"429": {"description": "Rate limit exceeded", "content": {"application/json": {"schema": "Error"}}}}


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _stats(summary: str, schema: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    responses = {"200": _json(schema, summary), "400": _json("Error", "Bad period"), **RATE_LIMITED, **(extra or {})}
    return {"get": {"summary": summary, "parameters": [PERIOD], "responses": responses}}


def _page(summary: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """An HTML page of /v1/stats figures: its errors are pages too, and it counts against the /v1 read limit."""
    html = {"text/html": {"schema": {"type": "string"}}}
    responses = {
        "200": {"description": "HTML", "content": html},
        "400": {"description": "Bad period (an HTML page)", "content": html},
        "429": {"description": "Rate limit exceeded (an HTML page)", "content": html},
        **(extra or {}),
    }
    return {"get": {"summary": summary, "parameters": [PERIOD], "responses": responses}}


PATHS: dict[str, dict[str, Any]] = {
    "/v1/events": {
        "post": {
            "summary": "Submit a batch of 1-100 tool-call events (body at most 100 KB)",
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": "A retry with the same key within 24 h gets the first answer "
                    "and is not counted twice",
                }
            ],
            "requestBody": {"required": True, "content": {"application/json": {"schema": "EventBatch"}}},
            "responses": {
                "200": _json("Accepted", "Events accepted (committed, with the default ack = commit)"),
                "400": _json("Error", "Validation failed: details lists every problem"),
                "413": _json("Error", "Body larger than 100 KB"),
                **RATE_LIMITED,
                "503": _json("Error", "Queue full or commit too slow; see retry_after and Retry-After"),
            },
        }
    },
    "/v1/stats/overview": _stats("Summary across all tools", "Overview"),
    "/v1/stats/tools": _stats("Statistics of every tool", "Tools"),
    "/v1/stats/tool/{tool_name}": {
        **_stats(
            "Daily series, versions and countries of one tool",
            "ToolDetail",
            {"404": _json("Error", "Unknown tool, or no data in the period")},
        ),
        "parameters": [{"name": "tool_name", "in": "path", "required": True, "schema": {"type": "string"}}],
    },
    "/v1/stats/errors": _stats("Error types, counts and last seen", "Errors"),
    "/v1/stats/performance": _stats("Response-time percentiles, cache and services", "Performance"),
    "/v1/health": {
        "get": {
            "summary": "Health check (not rate limited)",
            "responses": {"200": _json("Health", "Healthy"), "503": _json("Health", "Unhealthy")},
        }
    },
    "/v1/status": {
        "get": {
            "summary": "Database, queue depth and memory",
            "responses": {"200": _json("Status", "Status"), **RATE_LIMITED},
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics (not rate limited)",
            "responses": {
                "200": {
                    "description": "Prometheus text format",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        }
    },
    "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3"}}}},
    "/docs": {"get": {"summary": "This document as a page", "responses": {"200": {"description": "HTML"}}}},
    "/": _page("Statistics of every tool as a page (setting public_pages)"),
    "/tools/{tool_name}": {
        **_page("One tool's statistics as a page (setting public_pages)", {"404": {"description": "Unknown tool"}}),
        "parameters": [{"name": "tool_name", "in": "path", "required": True, "schema": {"type": "string"}}],
    },
}


COMPONENTS = {
    "Event": schemas.EventSchema,  # before EventBatch, which nests it
    "EventBatch": schemas.EventBatchSchema,
    "Accepted": answers.AcceptedSchema,
    "Error": answers.ErrorSchema,
    "Overview": answers.OverviewSchema,
    "Tools": answers.ToolsSchema,
    "ToolDetail": answers.ToolDetailSchema,
    "Errors": answers.ErrorsSchema,
    "Performance": answers.PerformanceSchema,
    "Health": answers.HealthSchema,
    "Status": answers.StatusSchema,
}


def build_spec() -> dict[str, Any]:
    """The whole OpenAPI document."""
    spec = APISpec(
        title="weather_metrics",
        version="1.0.0",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": "Anonymous tool-call analytics for weather MCP servers."},
    )
    for name, schema in {**COMPONENTS, **API_COMPONENTS}.items():
        spec.components.schema(name, schema=schema)
    spec.components.schema("ApiError", API_ERROR_SCHEMA)
    spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    spec.components.security_scheme("apiKey", {"type": "apiKey", "in": "header", "name": "X-API-Key"})
    for path, operations in {**PATHS, **API_PATHS}.items():
        spec.path(
            path=path,
            operations={k: v for k, v in operations.items() if k != "parameters"},
            parameters=operations.get("parameters"),
        )
    return spec.to_dict()


def flask_path(rule: str) -> str:
    """/v1/stats/tool/<tool_name> -> /v1/stats/tool/{tool_name}."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def init_app(app: Flask) -> None:
    spec = build_spec()

    @app.get("/openapi.json")
    def openapi() -> Response:
        """The OpenAPI document."""
        return jsonify(spec)

    app.register_blueprint(docs_page.bp)
