"""The MCP server surface: /mcp, authenticated by an organization API key.

Keys come as `Authorization: Bearer <key>` or `X-API-Key: <key>`. Errors use the /api
format; the rate limit (setting mcp_rate_limit) counts per organization.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Blueprint, g, request

from weather_metrics.accounts import organizations as accounts
from weather_metrics.store.models import ApiKey
from weather_metrics.web.auth import bearer_token, client_ip
from weather_metrics.web.errors import ApiProblem, error_response
from weather_metrics.web.limits import limiter
from weather_metrics.web.services import services

bp = Blueprint("mcp", __name__, url_prefix="/mcp")


def presented_key() -> str | None:
    """The API key of the request: X-API-Key, or a Bearer token that looks like one."""
    given = request.headers.get("X-API-Key", "").strip()
    if given:
        return given
    token = bearer_token()
    return token if token and token.startswith(accounts.API_KEY_PREFIX) else None


def api_key() -> ApiKey | None:
    """The live API key the request presents, looked up once per request."""
    if "mcp_key" not in g:
        secret = presented_key()
        g.mcp_key = accounts.authenticate_api_key(secret) if secret else None
    return g.mcp_key  # type: ignore[no-any-return]


def organization_key() -> str:
    """Rate-limit key: the key's organization; unauthenticated callers count by IP."""
    key = api_key()
    return f"org:{key.organization_id}" if key is not None else "ip:" + client_ip()


limiter.limit(lambda: services().settings["mcp_rate_limit"], key_func=organization_key)(bp)


def key_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """The view needs a live organization API key (401 otherwise)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if api_key() is None:
            raise ApiProblem(401, "An organization API key is required: Authorization: Bearer <key> or X-API-Key")
        return view(*args, **kwargs)

    return wrapper


bp.register_error_handler(Exception, error_response)
