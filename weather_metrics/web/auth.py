"""Who is calling: the bearer token, the signed-in user, and the decorator views use to require them."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import g, request

from weather_metrics.accounts.tokens import TokenError
from weather_metrics.store.models import User
from weather_metrics.web.errors import ApiProblem
from weather_metrics.web.services import services


def client_ip() -> str:
    return request.remote_addr or "unknown"


def bearer_token() -> str | None:
    """The token of an `Authorization: Bearer <token>` header (the scheme in any case)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def caller_key() -> str:
    """Rate-limit key: the signed-in user when the token verifies, else the client IP."""
    token = bearer_token()
    if token:
        try:
            return "user:" + services().tokens.decode(token, "access")["sub"]
        except TokenError:
            pass
    return "ip:" + client_ip()


def signed_in() -> tuple[User, dict[str, Any]]:
    """The user and claims of the request's access token, checked once per request; TokenError otherwise."""
    if "signed_in" not in g:
        g.signed_in = services().tokens.authenticate(bearer_token() or "")
    return g.signed_in  # type: ignore[no-any-return]


def authenticated(*roles: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The view needs a valid access token; with roles, one of them (403 otherwise)."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = bearer_token()
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
