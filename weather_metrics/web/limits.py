"""Rate limits of /api and /mcp (flask-limiter); the /v1 limiter is core/ratelimit.py."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, g, request
from flask_limiter import Limiter

from weather_metrics.core.shared_ratelimit import REDIS_OPTIONS
from weather_metrics.runtime import prometheus
from weather_metrics.settings import shown_url
from weather_metrics.store.db import is_url, resolved, without_password
from weather_metrics.web.auth import client_ip
from weather_metrics.web.services import EXTENSION, services

# Storage comes from the settings rate_limit_storage or redis_url (see init_app).
limiter = Limiter(key_func=client_ip, headers_enabled=True, strategy="sliding-window-counter")
# The public statistics pages; the sign-in pages share the API's login limits, kept here.
OWN_LIMITER_PAGES = frozenset({"pages.overview", "pages.tool"})


@limiter.request_filter
def own_limiter() -> bool:
    """/v1 and the statistics pages count in their own limiter (core/ratelimit.py): nothing for flask-limiter."""
    return request.blueprint == "v1" or request.endpoint in OWN_LIMITER_PAGES


def account_limit(key_func: Callable[[], str], **options: Any) -> Callable[..., Any]:
    """The per-account login limit: every route that tests an account's password shares it."""
    return limiter.shared_limit(
        lambda: services().settings["login_rate_limit_per_account"],
        scope="login-account",
        key_func=key_func,
        **options,
    )


def address_limit(**options: Any) -> Callable[..., Any]:
    """The per-address login limit: the API's login and the sign-in page spend one allowance."""
    return limiter.shared_limit(
        lambda: services().settings["login_rate_limit_per_ip"],
        scope="login-address",
        key_func=lambda: "login-ip:" + client_ip(),
        **options,
    )


def export_limit(key_func: Callable[[], str]) -> Callable[..., Any]:
    """A person's exports (export_rate_limit): the API and the exports page spend one allowance, under the
    key "user:<id>" on both. A 503 (exports paused while the disk is low) did nothing and spends none of it."""
    return limiter.shared_limit(
        lambda: services().settings["export_rate_limit"],
        scope="exports",
        key_func=key_func,
        deduct_when=lambda response: response.status_code != 503,
    )


def account_key(email: str) -> str:
    return f"login:{email.lower()}"


def init_app(app: Flask) -> None:
    """Bind the limiter to its storage, with Retry-After only where the contract puts it."""

    # Registered before the limiter's own hook, so it runs after it (Flask runs them in reverse).
    @app.after_request
    def spec_retry_after(response: Response) -> Response:
        """Retry-After belongs to 429 (the limiter's wait, also as X-RateLimit-Retry-After) and 503.

        The limiter puts its window's reset into Retry-After on every response it counts;
        a 503 keeps the writer's own wait, and other answers get none.
        """
        if response.status_code == 429:
            if "Retry-After" in response.headers:
                response.headers["X-RateLimit-Retry-After"] = response.headers["Retry-After"]
        elif response.status_code == 503 and "retry_after_wait" in g:
            response.headers["Retry-After"] = str(g.retry_after_wait)
        elif response.status_code != 503:
            response.headers.pop("Retry-After", None)
        return response

    settings = app.extensions[EXTENSION].settings
    storage = settings["rate_limit_storage"] or settings["redis_url"] or "memory://"
    app.config["RATELIMIT_STORAGE_URI"] = storage
    app.config["RATELIMIT_KEY_PREFIX"] = key_prefix(settings)
    if storage != "memory://":
        # Redis failing: each process counts alone (its own memory, the same limits) and logs it, rather than
        # answer 500 or refuse everyone; flask-limiter tries Redis again after 1, 2, 4… 32 seconds.
        app.config["RATELIMIT_STORAGE_OPTIONS"] = REDIS_OPTIONS
        app.config["RATELIMIT_IN_MEMORY_FALLBACK_ENABLED"] = True
        app.config["RATELIMIT_SWALLOW_ERRORS"] = True
        app.after_request(count_fallback)
    limiter.init_app(app)


def count_fallback(response: Response) -> Response:
    # flask-limiter has no public word for "storage down"; its flag is read here only (flask-limiter is pinned).
    if limiter._storage_dead and request.blueprint in ("api", "mcp"):  # noqa: SLF001
        prometheus.rate_limit_fallbacks_total.labels("api").inc()
    return response


def key_prefix(settings: dict[str, Any]) -> str:
    """Every process of one service shares its counters, and only them: they are named after its database.

    A URL is named without its password: processes during a password change still share, and key
    names in Redis carry no trace of it.
    """
    named = resolved(settings["database"])
    if is_url(named):
        named = without_password(named)[0]
    return "weather_metrics:" + hashlib.sha256(named.encode()).hexdigest()[:16]


shown = shown_url  # a Redis URL without its password, for messages
