"""Forms of other sites are refused: every POST, PUT, PATCH and DELETE of the pages carries a token of this browser.

The token is an HMAC (keyed with jwt_secret) of a cookie's secret: the session cookie's when
someone is signed in, else a sign-in cookie's, set with the sign-in form (so a sign-in, too,
comes from our own form: no login CSRF). A page never holds either secret, and another site
can read neither. Forms send the token in the field `csrf_token`, scripts in the header
X-CSRF-Token; it is compared in constant time. Browsers' own signals come first: an Origin
other than this service's, or Sec-Fetch-Site other than same-origin, is refused whatever the token.
"""

from __future__ import annotations

import secrets

from flask import Blueprint, Response, g, request
from werkzeug.exceptions import Forbidden

from weather_metrics.accounts.logins import form_token, form_token_matches, well_formed
from weather_metrics.web.pages.sessions import session_secret, viewer
from weather_metrics.web.services import services

FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
SIGN_IN_COOKIE = "weather_metrics_sign_in"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORM_MAX_BYTES = 64 * 1024  # a page's form is small; anything larger is refused (413) before it is read

RELOAD = "Go back, reload the page and send the form again."
NOT_OURS = "This form did not come from a page of this service, so it was not accepted."


def _key() -> str:
    return str(services().settings["jwt_secret"])


def _sign_in_secret() -> str:
    """This browser's sign-in cookie, made now (and set with the answer) when it has none."""
    if "sign_in_secret" not in g:
        found = request.cookies.get(SIGN_IN_COOKIE)
        g.sign_in_secret = found if well_formed(found) else secrets.token_urlsafe(32)
        g.set_sign_in_cookie = g.sign_in_secret != found
    return str(g.sign_in_secret)


def csrf_token() -> str:
    """The token a form of this page sends (templates call it for every form)."""
    login = viewer()
    secret = session_secret() if login is not None else _sign_in_secret()
    g.form_token_shown = True
    return form_token(_key(), str(secret))


def _own_origin() -> str:
    return f"{request.scheme}://{request.host}".lower()


def _check_browser_signals() -> None:
    origin = request.headers.get("Origin")
    if origin is not None and origin.rstrip("/").lower() != _own_origin():
        hint = ""
        if origin.lower().replace("https://", "http://", 1) == _own_origin():
            hint = " Behind a proxy that serves HTTPS, set trusted_proxies (docs/deployment.md)."
        raise Forbidden(f"{NOT_OURS} It was sent from {origin[:100]}, not from {_own_origin()}.{hint}")
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site != "same-origin":
        raise Forbidden(f"{NOT_OURS} The browser says it was sent from another site ({site[:40]}).")


def _bindings() -> list[str]:
    """The cookie secrets a valid token may be made of: the live session's alone when someone is signed in."""
    if viewer() is not None:
        return [str(session_secret())]
    found = [request.cookies.get(SIGN_IN_COOKIE), session_secret()]
    return [secret for secret in found if secret and well_formed(secret)]


def check_form() -> None:
    """Before every page request that changes something: 403 unless it came from our own page in this browser."""
    if request.method in SAFE_METHODS:
        return
    _check_browser_signals()
    request.max_content_length = FORM_MAX_BYTES
    token = request.headers.get(HEADER) or request.form.get(FIELD, "")
    if not token:
        raise Forbidden(f"The form had no security token. {RELOAD}")
    bindings = _bindings()
    if not bindings:
        raise Forbidden(f"This browser sent no cookie of this service with the form (are cookies off?). {RELOAD}")
    if not any(form_token_matches(_key(), binding, token) for binding in bindings):
        raise Forbidden(f"The form's security token is not this browser's, or has expired. {RELOAD}")


def finish_form_page(response: Response) -> Response:
    """After a page with a form: never cached (its token is this browser's), and the sign-in cookie set if made now.

    The cookie is HttpOnly, SameSite=Strict, for this visit.
    """
    if g.get("form_token_shown"):
        response.headers["Cache-Control"] = "no-store"
        response.vary.add("Cookie")
    if g.get("set_sign_in_cookie"):
        response.set_cookie(
            SIGN_IN_COOKIE, g.sign_in_secret, path="/", secure=request.is_secure, httponly=True, samesite="Strict"
        )
    return response


def clear_sign_in_cookie(response: Response) -> None:
    response.delete_cookie(SIGN_IN_COOKIE, path="/", secure=request.is_secure, httponly=True, samesite="Strict")


def protect_forms(bp: Blueprint) -> None:
    """Every state-changing request of `bp` is checked; templates get csrf_token()."""
    bp.before_request(check_form)
    bp.after_request(finish_form_page)
    bp.add_app_template_global(csrf_token)
