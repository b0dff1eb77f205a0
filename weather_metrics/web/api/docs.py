"""OpenAPI paths of /api, for web/docs.py."""

from __future__ import annotations

from typing import Any

from weather_metrics.web.api import alerts, analytics, dashboards, ingest_schemas, metrics, reports, schemas, ws
from weather_metrics.web.api.openapi import BEARER, ERROR, operation

_ERRORS = {
    "400": "Validation failed",
    "401": "Missing, invalid or expired token",
    "403": "Role not allowed",
    "404": "Not found in your organization",
    "409": "Already exists",
    "429": "Rate limit exceeded",
}


def _op(summary: str, ok: str, body: str | None = None, auth: bool = True, **extra: Any) -> dict[str, Any]:
    return operation(summary, ok, _ERRORS, body, auth, **extra)


def _id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


API_PATHS: dict[str, dict[str, Any]] = {
    "/api/auth/login": {
        "post": _op("Log in with email and password, or an SSO ID token", "200 Tokens", "Login", auth=False)
    },
    "/api/auth/refresh": {
        "post": _op("New tokens for a refresh token (it rotates)", "200 Tokens", "Refresh", auth=False)
    },
    "/api/auth/logout": {"post": _op("End the session: its tokens stop working", "204 Logged out")},
    "/api/users": {
        "get": _op(
            "Users of the organization (developers: only themselves)",
            "200 Users",
            parameters=[
                {"name": n, "in": "query", "schema": {"type": "string"}} for n in ("role", "team_id", "page", "limit")
            ],
        ),
        "post": _op("Create a user (admin); returns a one-time password unless one is given", "201 User", "UserCreate"),
    },
    "/api/users/{user_id}": {
        "get": _op("One user's profile", "200 User"),
        "put": _op(
            "Update a profile (admin: anyone; others: themselves, not role or active)", "200 User", "UserUpdate"
        ),
        "parameters": [_id("user_id")],
    },
    "/api/teams": {
        "get": _op(
            "Teams, optionally with members",
            "200 Teams",
            parameters=[
                {"name": n, "in": "query", "schema": {"type": "string"}} for n in ("include_members", "page", "limit")
            ],
        ),
        "post": _op("Create a team (admin, manager)", "201 Team", "TeamCreate"),
    },
    "/api/teams/{team_id}": {
        "delete": _op("Delete a team (admin, manager)", "204 Deleted"),
        "parameters": [_id("team_id")],
    },
    "/api/teams/{team_id}/members": {
        "post": _op("Add a member, lead or member (admin, manager)", "201 Membership", "Member"),
        "parameters": [_id("team_id")],
    },
    "/api/teams/{team_id}/members/{user_id}": {
        "delete": _op("Remove a member (admin, manager)", "204 Removed"),
        "parameters": [_id("team_id"), _id("user_id")],
    },
    "/api/keys": {
        "get": _op("API keys of the organization, prefix only (admin)", "200 Keys"),
        "post": _op("Create an API key, ingest or read; the secret is shown once (admin)", "201 Key", "ApiKeyCreate"),
    },
    "/api/organization": {
        "get": _op("The caller's organization, with the time zone of its periods", "200 Organization"),
        "put": _op(
            "Rename the organization or set its IANA time zone (admin)", "200 Organization", "OrganizationUpdate"
        ),
    },
    "/api/keys/{key_id}": {"delete": _op("Revoke an API key (admin)", "204 Revoked"), "parameters": [_id("key_id")]},
}


API_COMPONENTS = {
    "Login": schemas.LoginSchema,
    "Refresh": schemas.RefreshSchema,
    "UserCreate": schemas.UserCreateSchema,
    "UserUpdate": schemas.UserUpdateSchema,
    "TeamCreate": schemas.TeamCreateSchema,
    "Member": schemas.MemberSchema,
    "ApiKeyCreate": schemas.ApiKeyCreateSchema,
    "OrganizationUpdate": schemas.OrganizationUpdateSchema,
}


IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "maxLength": 255},
    "description": "Resending a batch with the same key stores it once and repeats the first answer",
}


def _ingest(summary: str, item: str, auth: list[dict[str, list[str]]]) -> dict[str, Any]:
    body = {
        "oneOf": [
            {"$ref": f"#/components/schemas/{item}"},
            {"type": "array", "items": {"$ref": f"#/components/schemas/{item}"}},
        ]
    }
    op = _op(summary, "201 Stored: {status, batch_id, accepted, received_at}", parameters=[IDEMPOTENCY])
    op["security"] = auth
    op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    op["responses"]["202"] = {"description": "Queued, not yet committed (setting ack = 'enqueue')"}
    op["responses"]["409"] = {"description": "Idempotency-Key already used with another body", "content": ERROR}
    op["responses"]["413"] = {"description": "Body larger than metrics_max_body_bytes", "content": ERROR}
    op["responses"]["503"] = {
        "description": "Queue full or writer stopped: not stored; retry after Retry-After",
        "content": ERROR,
    }
    return op


API_KEY: list[dict[str, list[str]]] = [{"apiKey": []}, {"bearerAuth": []}]
HOOK_REGISTRATION = {
    "type": "object",
    "required": ["hook_url", "events", "organization_id", "secret"],
    "properties": {
        "hook_url": {"type": "string", "format": "uri", "maxLength": 2048, "description": "http(s), public address"},
        "events": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string", "enum": ["metrics.collected", "alert.triggered"]},
        },
        "organization_id": {"type": "string", "description": "The API key's organization"},
        "secret": {"type": "string", "minLength": 16, "maxLength": 256, "description": "Signs every delivery"},
    },
}


INGEST_PATHS: dict[str, dict[str, Any]] = {
    "/api/metrics/agents": {
        "post": _ingest(
            "Store agent executions (yours; managers: your teams'; admins: anyone's)", "AgentExecution", BEARER
        )
    },
    "/api/metrics/productivity": {
        "post": _ingest("Store productivity metrics (same scope rules as agents)", "ProductivityMetric", BEARER)
    },
    "/mcp/metrics/collect": {
        "post": _ingest("Store agent executions from an MCP server (organization API key)", "AgentExecution", API_KEY)
    },
    "/mcp/config/{organization_id}": {
        "get": {
            **_op("Collection settings for an MCP server of the organization (API key or access token)", "200 Config"),
            "security": API_KEY,
        },
        "parameters": [_id("organization_id")],
    },
    "/mcp/hooks/register": {
        "post": {
            **_op("Register a webhook of the key's organization; the secret is never shown again", "201 Webhook"),
            "security": API_KEY,
            "requestBody": {"required": True, "content": {"application/json": {"schema": HOOK_REGISTRATION}}},
        }
    },
    "/mcp/hooks": {
        "get": {**_op("Webhooks of the key's organization (secret as a hint)", "200 Webhooks"), "security": API_KEY}
    },
    "/mcp/hooks/{hook_id}": {
        "delete": {**_op("Delete a webhook and its deliveries", "204 Deleted"), "security": API_KEY},
        "parameters": [_id("hook_id")],
    },
    "/mcp/hooks/{hook_id}/deliveries": {
        "get": {
            **_op(
                "The webhook's latest deliveries with every attempt",
                "200 Deliveries",
                parameters=[
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}}
                ],
            ),
            "security": API_KEY,
        },
        "parameters": [_id("hook_id")],
    },
}


API_COMPONENTS.update(ingest_schemas.COMPONENTS)


for _paths in (INGEST_PATHS, metrics.PATHS, dashboards.PATHS, analytics.PATHS, reports.PATHS, alerts.PATHS, ws.PATHS):
    for _path, _operations in _paths.items():
        API_PATHS.setdefault(_path, {}).update(_operations)


for _resource in (metrics, dashboards, analytics, reports, alerts, ws):
    API_COMPONENTS.update(_resource.COMPONENTS)


API_ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "example": "VALIDATION_ERROR"},
                "message": {"type": "string"},
                "details": {"type": "object", "additionalProperties": True},
                "timestamp": {"type": "string", "format": "date-time"},
                "request_id": {"type": "string"},
            },
        }
    },
}
