"""Who is signed in to the pages: the session cookie, `viewer()`, and `@signed_in` for pages that need someone.

The cookie holds only a random secret; its login session is an `AuthSession` row like the
API's (accounts/logins.py), checked on every request, so logout, revocation, deactivation and
expiry end it at once. It is HttpOnly (no script reads it), SameSite=Strict (no other site's
page sends it), Path=/, and Secure whenever the request came over TLS: the service's own, or
a proxy's that `trusted_proxies` lets X-Forwarded-Proto say so.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Response, g, redirect, request, url_for
from werkzeug.exceptions import Forbidden

from weather_metrics.accounts.logins import BrowserLogin, BrowserSessions
from weather_metrics.settings import require_secret
from weather_metrics.web.services import services

SESSION_COOKIE = "weather_metrics_session"
SIGNED_IN_HOME = "/account"

View = TypeVar("View", bound=Callable[..., Any])


def browser_sessions() -> BrowserSessions:
    state = services()
    return BrowserSessions(state.tokens, require_secret(state.settings), state.settings["browser_session_days"])


def session_secret() -> str | None:
    return request.cookies.get(SESSION_COOKIE)


def viewer() -> BrowserLogin | None:
    """The person signed in to this browser, while their session lasts; looked up once per request."""
    if "viewer" not in g:
        secret = session_secret()
        g.viewer = browser_sessions().find(secret) if secret else None
        if secret and g.viewer is None:
            g.stale_session = True  # the cookie names no live session: take it back (see keep_cookies)
    return g.viewer  # type: ignore[no-any-return]


def current_viewer() -> BrowserLogin:
    """The viewer of a page behind @signed_in."""
    found = viewer()
    assert found is not None, "current_viewer() outside @signed_in"
    return found


def local_path(target: str | None, default: str = SIGNED_IN_HOME) -> str:
    """`target` when it is a path of this service (/account?x=1), else `default`: never another site.

    Browsers read `//host`, `/\\host` and `\\\\host` as other hosts, and drop tabs and newlines
    from URLs, so any of those, a scheme or a host make the default.
    """
    if not target or len(target) > 2000 or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    if any(c == "\\" or ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def sign_in_url(next_path: str | None = None) -> str:
    """The sign-in page, coming back to `next_path` (a local path) afterwards."""
    target = local_path(next_path, "")
    if not target or target == SIGNED_IN_HOME:
        return url_for("pages.sign_in_form")
    return url_for("pages.sign_in_form", next=target)


def this_page() -> str:
    """The path and query of the current request, to come back to."""
    query = request.query_string.decode("latin-1")
    return request.path + ("?" + query if query else "")


def signed_in(*roles: str) -> Callable[[View], View]:
    """The page needs someone signed in (else a redirect to the sign-in page, then back); with roles, one of them.

    Pages of issue 17 and later put it on every view that shows an organization's data; inside,
    `current_viewer()` is the user, organization and role, checked on this request.
    """

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            found = viewer()
            if found is None:
                return redirect(sign_in_url(this_page()), 303)
            if roles and found.role not in roles:
                raise Forbidden(f"This page is for the role {' or '.join(roles)}; you are signed in as {found.role}.")
            return view(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorate


def set_session_cookie(response: Response, secret: str, max_age: int) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=max_age,
        path="/",
        secure=request.is_secure,
        httponly=True,
        samesite="Strict",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", secure=request.is_secure, httponly=True, samesite="Strict")


def keep_cookies(response: Response) -> Response:
    """After a page: a cookie of an ended session is taken back; pages that depend on the cookie are not cached."""
    if g.get("stale_session") and not g.get("session_cookie_set"):
        clear_session_cookie(response)
    if "viewer" in g:
        response.vary.add("Cookie")
        if g.viewer is not None:
            response.headers["Cache-Control"] = "no-store"
    return response
