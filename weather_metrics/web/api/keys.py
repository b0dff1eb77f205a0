"""/api/keys: the organization's API keys, for /mcp (ingest) or for reading metrics (read); admins only."""

from __future__ import annotations

from typing import Any

from flask import jsonify
from flask.typing import ResponseReturnValue

from weather_metrics.accounts import organizations as accounts
from weather_metrics.web.api.blueprint import bp
from weather_metrics.web.api.schemas import ApiKeyCreateSchema
from weather_metrics.web.auth import authenticated, current_user
from weather_metrics.web.bodies import json_body
from weather_metrics.web.openapi import RATE_LIMITED, TOO_LARGE, UNAUTHORIZED, operation, path_id


@bp.get("/keys")
@authenticated("admin")
def list_keys() -> ResponseReturnValue:
    """Keys of the organization: prefix only, never the secret."""
    keys = accounts.list_api_keys(current_user().organization_id)
    return jsonify({"keys": [accounts.api_key_view(k) for k in keys]})


@bp.post("/keys")
@authenticated("admin")
def create_key() -> ResponseReturnValue:
    """Create a key of scope ingest (default) or read; its secret is in this answer only."""
    data = json_body(ApiKeyCreateSchema())
    me = current_user()
    key, secret = accounts.create_api_key(me.organization_id, data["name"], me.id, data["scope"])
    return jsonify({**accounts.api_key_view(key), "secret": secret}), 201


@bp.delete("/keys/<key_id>")
@authenticated("admin")
def revoke_key(key_id: str) -> ResponseReturnValue:
    """Revoke a key: requests with it are refused from now on."""
    accounts.revoke_api_key(current_user().organization_id, key_id)
    return "", 204


# OpenAPI, merged into /openapi.json by web/docs.py.
TAG = "API keys"
COMMON = {"403": "Admins only", **UNAUTHORIZED, **RATE_LIMITED}
PATHS: dict[str, dict[str, Any]] = {
    "/api/keys": {
        "get": operation(
            "API keys of your organization, for the /mcp surface: prefix only, never the secret (admin)",
            TAG,
            "200 The keys, revoked ones too",
            "ApiKeys",
            COMMON,
        ),
        "post": operation(
            "Create an API key; its secret is in this answer only (admin)",
            TAG,
            "201 The key with its secret",
            "NewApiKey",
            {"400": "Validation failed", **TOO_LARGE, **COMMON},
            body="ApiKeyCreate",
        ),
    },
    "/api/keys/{key_id}": {
        "delete": operation(
            "Revoke an API key: requests with it are refused from now on (admin)",
            TAG,
            "204 Revoked",
            None,
            {"404": "No such live key in your organization", **COMMON},
        ),
        "parameters": [path_id("key_id", "API key")],
    },
}
