"""/sign-in/oidc and its callback: signing in to the pages through the OpenID Connect provider of the API's SSO."""

from __future__ import annotations

import time
from typing import Any

from flask import g, make_response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import BadGateway, BadRequest, Forbidden, NotFound

from weather_metrics.accounts.oidc import (
    SIGN_IN_SECONDS,
    OidcProvider,
    ProviderUnavailable,
    SignInRefused,
    check_state,
    new_sign_in,
    redeem,
    seal,
    unseal,
)
from weather_metrics.accounts.sso import SsoError, sso_user
from weather_metrics.settings import require_secret
from weather_metrics.web.limits import address_limit
from weather_metrics.web.pages.account import TOO_MANY, _html_page
from weather_metrics.web.pages.blueprint import bp
from weather_metrics.web.pages.csrf import clear_sign_in_cookie
from weather_metrics.web.pages.sessions import browser_sessions, local_path, session_secret, set_session_cookie
from weather_metrics.web.services import services

# Lax, not Strict: the provider's redirect back is a top-level navigation from another site.
COOKIE = "weather_metrics_oidc"
COOKIE_PATH = "/sign-in/oidc"
MAX_CODE = 1500  # providers' codes are opaque ASCII; the longest seen are about a thousand characters
VISIBLE_ASCII = {"type": "string", "pattern": "^[!-~]*$"}
PROVIDER_DOWN = "The sign-in provider could not be asked ({}). Try again in a moment, or sign in with a password."


def _provider() -> OidcProvider:
    provider = services().sign_in_provider
    if provider is None:
        raise NotFound("This service has no single sign-on provider (oidc_issuer is not set).")
    return provider


def _callback_url() -> str:
    return url_for("pages.oidc_callback", _external=True)


@bp.get("/sign-in/oidc")
def oidc_sign_in() -> ResponseReturnValue:
    """Leave for the provider's sign-in, with a state, nonce and PKCE challenge this browser keeps in a cookie."""
    provider = _provider()
    pending = new_sign_in(local_path(request.args.get("next")), time.time())
    try:
        target = provider.authorization_url(pending, _callback_url())
    except ProviderUnavailable as exc:
        raise BadGateway(PROVIDER_DOWN.format(exc)) from None
    response = make_response(redirect(target, 303))
    response.set_cookie(
        COOKIE,
        seal(require_secret(services().settings), pending),
        max_age=SIGN_IN_SECONDS,
        path=COOKIE_PATH,
        secure=request.is_secure,
        httponly=True,
        samesite="Lax",
    )
    return response


def _refused(exc: SignInRefused) -> Exception:
    return Forbidden(str(exc)) if exc.status == 403 else BadRequest(str(exc))


@bp.get("/sign-in/oidc/callback")
@address_limit(error_message=TOO_MANY)
def oidc_callback() -> ResponseReturnValue:
    """Back from the provider: check state, spend it and the code once, swap the code for an ID token, sign in."""
    provider, now = _provider(), time.time()
    if "error" in request.args:
        described = request.args.get("error_description") or request.args["error"]
        raise Forbidden(f"The sign-in provider did not sign you in: {described[:200]}")
    code = request.args.get("code", "")
    try:
        pending = unseal(require_secret(services().settings), request.cookies.get(COOKIE), now)
        check_state(pending, request.args.get("state"))
        if not code or len(code) > MAX_CODE:
            raise SignInRefused("The sign-in provider sent no usable code back. Start a new sign-in.")
        redeem(pending.state, code, pending.expires_at, now)
        token = provider.id_token(code, pending, _callback_url())
        user = sso_user(services().sso.email(token, nonce=pending.nonce))  # type: ignore[union-attr]
    except SignInRefused as exc:
        raise _refused(exc) from None
    except SsoError as exc:
        raise Forbidden(f"{exc}.") from None
    except ProviderUnavailable as exc:
        raise BadGateway(PROVIDER_DOWN.format(exc)) from None
    browsers = browser_sessions()
    browsers.end(session_secret())
    secret, login = browsers.start(user)
    # A page that moves on by itself, not a redirect: a navigation started by our own page is same-site,
    # so the browser sends the new SameSite=Strict session cookie with it.
    response = make_response(render_template("pages/signed_in.html", next_path=pending.next_path))
    set_session_cookie(response, secret, max_age=login.expires_at - login.created_at)
    response.delete_cookie(COOKIE, path=COOKIE_PATH, secure=request.is_secure, httponly=True, samesite="Lax")
    clear_sign_in_cookie(response)
    g.session_cookie_set = True
    return response


PATHS: dict[str, dict[str, Any]] = {
    "/sign-in/oidc": {
        "get": {
            **_html_page(
                "Sign in through the organization's OpenID Connect provider (authorization code with PKCE)",
                [],
                {
                    "303": "On to the provider, with a sign-in cookie (HttpOnly, SameSite=Lax, 10 minutes)",
                    "404": "No provider is configured (a page)",
                    "502": "The provider's discovery document could not be read (a page)",
                },
            ),
            "parameters": [
                {
                    "name": "next",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "maxLength": 2000},
                    "description": "Where to go after signing in: a path of this service",
                }
            ],
        }
    },
    "/sign-in/oidc/callback": {
        "get": {
            **_html_page(
                "Where the provider sends the browser back: the sign-in completes once",
                [],
                {
                    "200": "Signed in: a session cookie, and a page that moves on to `next`",
                    "400": "No sign-in of this browser, expired, already used, or no code (a page)",
                    "403": "A state of another sign-in, a refused ID token, or no active user of that email (a page)",
                    "404": "No provider is configured (a page)",
                    "429": "Too many sign-in attempts (a page)",
                    "502": "The provider could not be reached or answered something unusable (a page)",
                },
            ),
            # Sized so that all four, percent-encoded, fit in one request line (gunicorn: 8190 bytes).
            "parameters": [
                {"name": "code", "in": "query", "required": False, "schema": {**VISIBLE_ASCII, "maxLength": MAX_CODE}},
                {"name": "state", "in": "query", "required": False, "schema": {**VISIBLE_ASCII, "maxLength": 128}},
                {"name": "error", "in": "query", "required": False, "schema": {**VISIBLE_ASCII, "maxLength": 64}},
                {
                    "name": "error_description",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "maxLength": 200},
                },
            ],
        }
    },
}
