"""/mcp/hooks: register, list and delete webhooks of the key's organization, and read their delivery logs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import jsonify, request
from flask.typing import ResponseReturnValue

from weather_metrics.core.strictjson import MalformedJson, parse_json
from weather_metrics.web.bodies import read_body
from weather_metrics.web.errors import ApiProblem
from weather_metrics.web.mcp.blueprint import api_key, bp, key_required
from weather_metrics.web.nul import nul_problems
from weather_metrics.web.openapi import (
    API_KEY,
    RATE_LIMITED,
    UNAUTHORIZED,
    operation,
    path_id,
    query,
    ref,
    required_object,
)
from weather_metrics.web.services import services
from weather_metrics.webhooks import deliveries as webhooks
from weather_metrics.webhooks.transport import MAX_URL

MAX_BODY = 16_384
DELIVERIES_LIMIT = (1, 200, 50)  # lowest, highest, default


def _organization() -> str:
    key = api_key()
    assert key is not None
    return key.organization_id


def _state() -> Any:
    return services()


@bp.post("/hooks/register")
@key_required
def register_hook() -> ResponseReturnValue:
    """Register a webhook of the key's organization; 201 with its id (the secret is never shown again)."""
    state = _state()
    try:
        body = parse_json(read_body(MAX_BODY), strict=True)
    except MalformedJson as exc:
        raise ApiProblem(400, str(exc)) from None
    problems = nul_problems(body) or webhooks.validation_problems(body, state.settings["webhook_allow_private"])
    if problems:
        raise ApiProblem(400, "Invalid webhook registration", problems)
    organization_id = _organization()
    if body["organization_id"] != organization_id:
        raise ApiProblem(404, f"Organization {body['organization_id']} not found")
    try:
        hook = webhooks.register(organization_id, body, state.webhooks.box, datetime.now(UTC))
    except webhooks.TooMany as exc:
        raise ApiProblem(400, str(exc), {"hook_url": str(exc)}) from None
    return jsonify({"status": "registered", **webhooks.hook_view(hook)}), 201


@bp.get("/hooks")
@key_required
def list_hooks() -> ResponseReturnValue:
    """Webhooks of the key's organization, oldest first; secrets only as a hint."""
    rows = (
        webhooks.Webhook.select()
        .where(webhooks.Webhook.organization == _organization())
        .order_by(webhooks.Webhook.created_at, webhooks.Webhook.id)
    )
    return jsonify({"webhooks": [webhooks.hook_view(row) for row in rows]})


@bp.delete("/hooks/<hook_id>")
@key_required
def delete_hook(hook_id: str) -> ResponseReturnValue:
    """Delete a webhook and its deliveries."""
    organization_id = _organization()
    webhooks.delete_hook(organization_id, hook_id)
    return "", 204


@bp.get("/hooks/<hook_id>/deliveries")
@key_required
def hook_deliveries(hook_id: str) -> ResponseReturnValue:
    """The webhook's latest deliveries, newest first, each with the log of its attempts."""
    low, high, default = DELIVERIES_LIMIT
    given = request.args.get("limit", str(default))
    if not given.isdigit() or not low <= int(given) <= high:
        raise ApiProblem(400, "Invalid limit", {"limit": f"Must be a whole number from {low} to {high}"})
    hook = webhooks.find_hook(_organization(), hook_id)
    return jsonify({"webhook": webhooks.hook_view(hook), "deliveries": webhooks.recent_deliveries(hook, int(given))})


# OpenAPI, merged into /openapi.json by web/docs.py: what webhooks/deliveries.py's views return.
SECRET = webhooks.SECRET_LENGTH
STRING: dict[str, Any] = {"type": "string"}
MOMENT: dict[str, Any] = {"type": "string", "format": "date-time"}
EVENTS: dict[str, Any] = {"type": "array", "items": {"type": "string", "enum": list(webhooks.EVENTS)}}
REGISTRATION = required_object(
    {
        "hook_url": {**STRING, "format": "uri", "maxLength": MAX_URL, "description": "http(s), a public address"},
        "events": {**EVENTS, "minItems": 1},
        "organization_id": {**STRING, "description": "The API key's organization"},
        "secret": {**STRING, "minLength": SECRET[0], "maxLength": SECRET[1], "description": "Signs every delivery"},
    }
)
WEBHOOK = required_object(
    {
        "id": STRING,
        "organization_id": STRING,
        "hook_url": STRING,
        "events": EVENTS,
        "enabled": {"type": "boolean", "description": "false once its deliveries kept failing"},
        "disabled_reason": {**STRING, "nullable": True},
        "consecutive_failures": {"type": "integer", "description": "Given-up deliveries in a row"},
        "secret_hint": {**STRING, "example": "****c0de", "description": "The secret's last 4 characters"},
        "created_at": MOMENT,
    }
)
ATTEMPT = required_object(
    {
        "attempt": {"type": "integer"},
        "at": MOMENT,
        "status_code": {"type": "integer", "nullable": True, "description": "null when no answer came"},
        "error": {**STRING, "nullable": True, "description": "null when delivered"},
        "duration_ms": {"type": "number"},
    }
)
DELIVERY = required_object(
    {
        "id": STRING,
        "event": {"type": "string", "enum": list(webhooks.EVENTS)},
        "status": {"type": "string", "enum": ["pending", "delivered", "failed"]},
        "attempts": {"type": "integer"},
        "next_attempt_at": {**MOMENT, "nullable": True, "description": "While pending"},
        "last_error": {**STRING, "nullable": True},
        "created_at": MOMENT,
        "finished_at": {**MOMENT, "nullable": True},
        "payload": {"type": "object", "description": "The body sent, before signing"},
        "log": {"type": "array", "items": ref("WebhookAttempt"), "description": "Every attempt, oldest first"},
    }
)
COMPONENTS: dict[str, Any] = {
    "WebhookRegistration": REGISTRATION,
    "Webhook": WEBHOOK,
    "NewWebhook": required_object({"status": {"type": "string", "enum": ["registered"]}, **WEBHOOK["properties"]}),
    "Webhooks": required_object({"webhooks": {"type": "array", "items": ref("Webhook")}}),
    "WebhookAttempt": ATTEMPT,
    "WebhookDelivery": DELIVERY,
    "WebhookDeliveries": required_object(
        {"webhook": ref("Webhook"), "deliveries": {"type": "array", "items": ref("WebhookDelivery")}}
    ),
}


TAG = "Webhooks"
LOW, HIGH, DEFAULT = DELIVERIES_LIMIT
COMMON = {**UNAUTHORIZED, **RATE_LIMITED}
HOOK_ID = path_id("hook_id", "webhook")
PATHS: dict[str, dict[str, Any]] = {
    "/mcp/hooks/register": {
        "post": operation(
            f"Register a webhook of the key's organization (at most {webhooks.MAX_PER_ORGANIZATION}); "
            "the secret is never shown again",
            TAG,
            "201 The webhook",
            "NewWebhook",
            {
                "400": "Invalid registration: details names each bad field",
                "404": "organization_id is not the key's organization",
                "413": f"Body larger than {MAX_BODY // 1024} KiB",
                **COMMON,
            },
            body="WebhookRegistration",
            security=API_KEY,
        )
    },
    "/mcp/hooks": {
        "get": operation(
            "Webhooks of the key's organization, oldest first (the secret only as a hint)",
            TAG,
            "200 The webhooks",
            "Webhooks",
            COMMON,
            security=API_KEY,
        )
    },
    "/mcp/hooks/{hook_id}": {
        "delete": operation(
            "Delete a webhook and its deliveries",
            TAG,
            "204 Deleted",
            None,
            {"404": "No such webhook of the key's organization", **COMMON},
            security=API_KEY,
        ),
        "parameters": [HOOK_ID],
    },
    "/mcp/hooks/{hook_id}/deliveries": {
        "get": operation(
            "The webhook's latest deliveries, newest first, each with the log of its attempts",
            TAG,
            "200 The webhook and its deliveries",
            "WebhookDeliveries",
            {"400": "Bad limit", "404": "No such webhook of the key's organization", **COMMON},
            security=API_KEY,
            parameters=[query("limit", {"type": "integer", "minimum": LOW, "maximum": HIGH, "default": DEFAULT})],
        ),
        "parameters": [HOOK_ID],
    },
}
