"""Who is calling: the bearer token, the signed-in user or read key, and the decorator views use to require them."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import g, request

from weather_metrics.accounts import organizations as accounts
from weather_metrics.accounts.tokens import TokenError
from weather_metrics.query.scope import Scope, organization_scope, scope_for
from weather_metrics.store.models import ApiKey, User
from weather_metrics.web.errors import ApiProblem
from weather_metrics.web.services import services

KEY_HEADER = "X-API-Key"


def client_ip() -> str:
    return request.remote_addr or "unknown"


def bearer_token() -> str | None:
    """The token of an `Authorization: Bearer <token>` header (the scheme in any case)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def header_key() -> ApiKey | None:
    """The live API key of the request's X-API-Key header, any scope, looked up once per request."""
    if "header_key" not in g:
        secret = request.headers.get(KEY_HEADER, "").strip()
        g.header_key = accounts.authenticate_api_key(secret) if secret else None
    return g.header_key  # type: ignore[no-any-return]


def caller_key() -> str:
    """Rate-limit key: the signed-in user when the token verifies, else the live API key, else the client IP.

    A key counts for itself, as a user does: one busy script or Grafana does not spend the
    allowance of the organization's other keys, and a bad key costs only its sender's address.
    """
    token = bearer_token()
    if token:
        try:
            return "user:" + services().tokens.decode(token, "access")["sub"]
        except TokenError:
            pass
    key = header_key() if request.headers.get(KEY_HEADER) else None
    return f"key:{key.id}" if key is not None else "ip:" + client_ip()


def signed_in() -> tuple[User, dict[str, Any]]:
    """The user and claims of the request's access token, checked once per request; TokenError otherwise."""
    if "signed_in" not in g:
        g.signed_in = services().tokens.authenticate(bearer_token() or "")
    return g.signed_in  # type: ignore[no-any-return]


def _read_key() -> ApiKey:
    """The request's X-API-Key as a live key of the read scope; 401 otherwise, as any credential refused."""
    key = header_key()
    if key is None:
        raise ApiProblem(401, "Unknown or revoked API key")
    if key.scope != accounts.READ:
        raise ApiProblem(401, f"This API key has the {key.scope} scope: reading /api takes a key of the read scope")
    return key


def authenticated(*roles: str, read_key: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The view needs a valid access token; with roles, one of them (403 otherwise).

    With `read_key`, a request without a bearer token may instead send a read-scope API key
    in X-API-Key: the caller is then the key's organization (see `caller_scope`), whatever
    the roles. Anywhere else a key is not a credential, so a request with only a key gets 401.
    """

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = bearer_token()
            if token is None and request.headers.get(KEY_HEADER):
                if not read_key:
                    raise ApiProblem(401, "This route takes an access token (Authorization: Bearer), not an API key")
                g.api_key = _read_key()
                return view(*args, **kwargs)
            if token is None:
                raise ApiProblem(401, "Authorization: Bearer <access token> is required")
            try:
                user, claims = signed_in()
            except TokenError as exc:
                raise ApiProblem(401, str(exc)) from None
            g.user, g.claims = user, claims
            if roles and user.role not in roles:
                raise ApiProblem(403, f"This needs the role {' or '.join(roles)}")
            return view(*args, **kwargs)

        return wrapper

    return decorate


def current_user() -> User:
    return g.user  # type: ignore[no-any-return]


def caller_scope() -> Scope:
    """Whose data the caller may see: the signed-in user's scope, or the whole organization of a read key.

    A read key is made by an admin for the organization's own tools (scripts, Grafana), so it
    sees what an admin sees of the metrics: everyone's, and nothing of another organization.
    """
    key: ApiKey | None = g.get("api_key")
    return organization_scope(key.organization_id) if key is not None else scope_for(current_user())
