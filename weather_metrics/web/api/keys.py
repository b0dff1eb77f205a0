"""/api/keys: the organization's API keys, for /mcp (ingest) or for reading metrics (read); admins only."""

from __future__ import annotations

from flask import jsonify
from flask.typing import ResponseReturnValue

from weather_metrics.accounts import organizations as accounts
from weather_metrics.web.api.blueprint import bp
from weather_metrics.web.api.schemas import ApiKeyCreateSchema
from weather_metrics.web.auth import authenticated, current_user
from weather_metrics.web.bodies import json_body


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
