"""POST /api/auth/login, /api/auth/refresh, /api/auth/logout."""

from __future__ import annotations

from typing import Any

from flask import g, jsonify
from flask.typing import ResponseReturnValue

from weather_metrics.accounts.logins import LoginRefused, password_login
from weather_metrics.accounts.organizations import user_view
from weather_metrics.accounts.sso import SsoError, sso_user
from weather_metrics.accounts.tokens import TokenError
from weather_metrics.web.api.blueprint import bp
from weather_metrics.web.api.schemas import LoginSchema, RefreshSchema
from weather_metrics.web.auth import authenticated, client_ip
from weather_metrics.web.bodies import json_body, peek_body
from weather_metrics.web.errors import ApiProblem
from weather_metrics.web.limits import account_key, account_limit, address_limit
from weather_metrics.web.openapi import PUBLIC, RATE_LIMITED, TOO_LARGE, UNAUTHORIZED, operation
from weather_metrics.web.services import services


def _login_email() -> str:
    """Rate-limit key per account: the email asked for, whatever it is."""
    email = peek_body().get("email")
    return account_key(email) if isinstance(email, str) else "login-ip:" + client_ip()


def _is_sso() -> bool:
    """SSO logins name no account before the token is checked; the per-IP limit covers them."""
    return "sso_token" in peek_body()


@bp.post("/auth/login")
@address_limit()
@account_limit(_login_email, exempt_when=_is_sso)
def login() -> ResponseReturnValue:
    """Exchange an email and password, or an SSO ID token, for tokens."""
    state = services()
    data = json_body(LoginSchema())
    if "sso_token" in data:
        if state.sso is None:
            raise ApiProblem(400, "SSO is not configured on this server", {"sso_token": "SSO is not configured"})
        try:
            user = sso_user(state.sso.email(data["sso_token"]))
        except SsoError as exc:
            raise ApiProblem(401, str(exc)) from None
    else:
        try:
            user = password_login(state.passwords, data["email"], data["password"])
        except LoginRefused as exc:
            raise ApiProblem(401, str(exc)) from None
    tokens = state.tokens.start_session(user)
    return jsonify({**tokens.as_dict(), "user": user_view(user)})


@bp.post("/auth/refresh")
def refresh() -> ResponseReturnValue:
    """Exchange a refresh token for new tokens; the old refresh token stops working."""
    data = json_body(RefreshSchema())
    try:
        tokens = services().tokens.refresh(data["refresh_token"])
    except TokenError as exc:
        raise ApiProblem(401, str(exc)) from None
    return jsonify(tokens.as_dict())


@bp.post("/auth/logout")
@authenticated()
def logout() -> ResponseReturnValue:
    """End the session: its access and refresh tokens stop working at once."""
    services().tokens.logout(g.claims["sid"])
    return "", 204


# OpenAPI, merged into /openapi.json by web/docs.py.
TAG = "Auth"
BUSY = {"503": "Too many password checks at once; retry after Retry-After"}
PATHS: dict[str, dict[str, Any]] = {
    "/api/auth/login": {
        "post": operation(
            "Log in with email and password, or an SSO ID token",
            TAG,
            "200 Tokens, and who you are",
            "Session",
            {
                "400": "Validation failed, or SSO is not configured",
                "401": "Wrong email or password, inactive user, or an SSO token that is not accepted",
                **TOO_LARGE,
                **RATE_LIMITED,
                **BUSY,
            },
            body="Login",
            security=PUBLIC,
        )
    },
    "/api/auth/refresh": {
        "post": operation(
            "New tokens for a refresh token; the old refresh token stops working",
            TAG,
            "200 New tokens",
            "Tokens",
            {"400": "Validation failed", "401": "Invalid, used or expired refresh token", **TOO_LARGE, **RATE_LIMITED},
            body="Refresh",
            security=PUBLIC,
        )
    },
    "/api/auth/logout": {
        "post": operation(
            "End the session: its access and refresh tokens stop working at once",
            TAG,
            "204 Logged out",
            None,
            {**UNAUTHORIZED, **RATE_LIMITED},
        )
    },
}
