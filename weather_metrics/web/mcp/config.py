"""GET /mcp/config/<organization_id>: what an MCP server needs to send metrics here."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request, url_for
from flask.typing import ResponseReturnValue

from weather_metrics.accounts.tokens import TokenError
from weather_metrics.core.vocabulary import (
    AGENT_FIELDS,
    MAX_AGENT_NAME,
    MAX_COMMAND,
    MAX_ERROR_DETAILS,
    MAX_EXECUTION_MS,
    MAX_IDENTIFIER,
    MAX_METADATA_BYTES,
    MAX_SESSION_ID,
)
from weather_metrics.store.models import Organization
from weather_metrics.web.auth import bearer_token
from weather_metrics.web.errors import ApiProblem
from weather_metrics.web.mcp.blueprint import api_key, bp, live_key, refuse_key
from weather_metrics.web.openapi import API_KEY, BEARER, RATE_LIMITED, operation, path_id, required_object
from weather_metrics.web.services import services

REQUIRED_FIELDS = ("agent_name", "command", "execution_time_ms", "success", "timestamp")


def _caller_organization() -> str:
    """The organization of the ingest key, or of the signed-in user; 401 without either (or with a read key)."""
    key = api_key()
    if key is not None:
        return key.organization_id
    if live_key() is not None:  # a read key: /mcp judges the key it is sent, as with an ingest key
        raise refuse_key()
    token = bearer_token()
    if token:
        try:
            user, _claims = services().tokens.authenticate(token)
            return user.organization_id  # type: ignore[no-any-return]
        except TokenError as exc:
            raise ApiProblem(401, str(exc)) from None
    raise ApiProblem(401, "An organization API key or access token is required")


def collection_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Batching, limits and the fields collected: the same numbers the service enforces."""
    return {
        "batching": {
            "max_items_per_request": settings["metrics_max_items"],
            "max_body_bytes": settings["metrics_max_body_bytes"],
            "idempotency_key_header": "Idempotency-Key",
            "retry": "On 503 or 429, wait Retry-After seconds and resend the same batch with the same Idempotency-Key",
        },
        "rate_limits": {"collect": settings["mcp_rate_limit"] + " per organization"},
        "fields": {
            "required": list(REQUIRED_FIELDS),
            "optional": sorted(AGENT_FIELDS - set(REQUIRED_FIELDS)),
            "limits": {
                "agent_name_max_length": MAX_AGENT_NAME,
                "command_max_length": MAX_COMMAND,
                "error_details_max_length": MAX_ERROR_DETAILS,
                "user_identifier_max_length": MAX_IDENTIFIER,
                "session_id_max_length": MAX_SESSION_ID,
                "metadata_max_bytes": MAX_METADATA_BYTES,
                "execution_time_ms_max": MAX_EXECUTION_MS,
                "timestamp_max_future_seconds": settings["clock_skew_seconds"],
                "timestamp_max_age_days": settings["retention_days"],
            },
        },
    }


@bp.get("/config/<organization_id>")
def config(organization_id: str) -> ResponseReturnValue:
    """Collection settings for callers of that organization (API key or access token); never a secret."""
    if _caller_organization() != organization_id:
        raise ApiProblem(404, f"Organization {organization_id} not found")
    org = Organization.get_by_id(organization_id)
    key = api_key()
    state = services()
    return jsonify(
        {
            "organization_id": org.id,
            "organization_name": org.name,
            "time_zone": org.time_zone,
            "endpoints": {
                "collect": url_for("mcp.collect", _external=True),
                "config": request.base_url,
            },
            "authentication": {
                "headers": ["Authorization: Bearer <api key>", "X-API-Key: <api key>"],
                "key_prefix": key.prefix if key is not None else None,
            },
            **collection_settings(state.settings),
        }
    )


# OpenAPI, merged into /openapi.json by web/docs.py.
STRING: dict[str, Any] = {"type": "string"}
INTEGER: dict[str, Any] = {"type": "integer"}
STRINGS: dict[str, Any] = {"type": "array", "items": STRING}
CONFIG_SCHEMA = required_object(
    {
        "organization_id": STRING,
        "organization_name": STRING,
        "time_zone": {**STRING, "description": "IANA zone of the organization's days, weeks and months"},
        "endpoints": required_object({"collect": {**STRING, "format": "uri"}, "config": {**STRING, "format": "uri"}}),
        "authentication": required_object(
            {
                "headers": STRINGS,
                "key_prefix": {**STRING, "nullable": True, "description": "The calling key's; null for a user"},
            }
        ),
        "batching": required_object(
            {
                "max_items_per_request": INTEGER,
                "max_body_bytes": INTEGER,
                "idempotency_key_header": STRING,
                "retry": STRING,
            }
        ),
        "rate_limits": required_object({"collect": {**STRING, "example": "10000 per minute per organization"}}),
        "fields": required_object(
            {
                "required": STRINGS,
                "optional": STRINGS,
                "limits": {"type": "object", "additionalProperties": INTEGER, "description": "Lengths, sizes, ages"},
            }
        ),
    }
)
PATHS: dict[str, dict[str, Any]] = {
    "/mcp/config/{organization_id}": {
        "get": operation(
            "What an MCP server of the organization needs to send metrics here (API key or access token)",
            "MCP",
            "200 Endpoints, limits and the fields collected; never a secret",
            "McpConfig",
            {
                "401": "Missing, invalid or revoked API key or access token",
                "404": "Not the organization of your key or token",
                **RATE_LIMITED,
            },
            security=[*API_KEY, *BEARER],
        ),
        "parameters": [path_id("organization_id", "organization")],
    },
}
COMPONENTS: dict[str, Any] = {"McpConfig": CONFIG_SCHEMA}
