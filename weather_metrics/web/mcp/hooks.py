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
from weather_metrics.web.services import services
from weather_metrics.webhooks import deliveries as webhooks

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
    problems = webhooks.validation_problems(body, state.settings["webhook_allow_private"])
    if problems:
        raise ApiProblem(400, "Invalid webhook registration", problems)
    organization_id = _organization()
    if body["organization_id"] != organization_id:
        raise ApiProblem(404, f"Organization {body['organization_id']} not found")
    try:
        hook = webhooks.register(organization_id, body, state.webhooks.box, datetime.now(UTC))
    except webhooks.TooMany as exc:
        raise ApiProblem(400, str(exc), {"hook_url": str(exc)}) from None
    state.webhooks.subscribers.invalidate(organization_id)
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
    _state().webhooks.subscribers.invalidate(organization_id)
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
