"""The MCP server surface: /mcp, authenticated by an organization API key of the ingest scope.

Keys come as `Authorization: Bearer <key>` or `X-API-Key: <key>`. A key of the read scope
is refused (401), as on every route that does not take it. Errors use the /api format; the
rate limit (setting mcp_rate_limit) counts per organization.
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


def live_key() -> ApiKey | None:
    """The live API key the request presents, any scope, looked up once per request."""
    if "mcp_key" not in g:
        secret = presented_key()
        g.mcp_key = accounts.authenticate_api_key(secret) if secret else None
    return g.mcp_key  # type: ignore[no-any-return]


def api_key() -> ApiKey | None:
    """The live ingest key the request presents; a read key is none here."""
    key = live_key()
    return key if key is not None and key.scope == accounts.INGEST else None


def refuse_key() -> ApiProblem:
    """The 401 for a request without an ingest key, saying why when it presents a key of another scope."""
    key = live_key()
    if key is not None:
        return ApiProblem(401, f"This API key has the {key.scope} scope: /mcp takes a key of the ingest scope")
    return ApiProblem(401, "An organization API key is required: Authorization: Bearer <key> or X-API-Key")


def organization_key() -> str:
    """Rate-limit key: the ingest key's organization; other callers (a read key too) count by IP."""
    key = api_key()
    return f"org:{key.organization_id}" if key is not None else "ip:" + client_ip()


limiter.limit(lambda: services().settings["mcp_rate_limit"], key_func=organization_key)(bp)


def key_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """The view needs a live organization API key of the ingest scope (401 otherwise)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if api_key() is None:
            raise refuse_key()
        return view(*args, **kwargs)

    return wrapper


bp.register_error_handler(Exception, error_response)
