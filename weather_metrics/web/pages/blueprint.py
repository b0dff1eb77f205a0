"""The pages blueprint: its rate limit (the /v1 read bucket), forms and cookies, HTML error pages, number formats."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from types import CodeType
from typing import Any, TypeVar

from flask import Blueprint, Flask, Response, g, render_template, request
from jinja2 import BytecodeCache
from markupsafe import Markup, escape
from werkzeug.exceptions import HTTPException, InternalServerError, TooManyRequests

from weather_metrics.web.pages.csrf import finish_form_page, protect_forms
from weather_metrics.web.pages.policy import page_headers, protect
from weather_metrics.web.pages.sessions import keep_cookies, sign_in_url, this_page, viewer
from weather_metrics.web.services import services
from weather_metrics.web.v1.blueprint import add_rate_limit_headers, client_bucket

log = logging.getLogger(__name__)

bp = Blueprint(
    "pages",
    __name__,
    static_folder="static",
    static_url_path="/static",
    template_folder="templates",
)
protect(bp)
protect_forms(bp)
bp.after_request(keep_cookies)
bp.after_request(add_rate_limit_headers)

# First path segments whose errors stay JSON whatever the client accepts (the API surfaces).
API_ROOTS = frozenset({"v1", "api", "mcp", "ws", "metrics", "openapi.json"})

TITLES = {
    400: "Bad request",
    403: "Not allowed",
    404: "Page not found",
    405: "Method not allowed",
    413: "Too much data",
    429: "Too many requests",
    500: "Something went wrong",
    503: "Busy",
}

View = TypeVar("View", bound=Callable[..., Any])


def reads(cost: int) -> Callable[[View], View]:
    """The page takes `cost` tokens from its client's /v1 read bucket: one per /v1/stats query it runs.

    Pages and /v1 reads share that bucket, so a client loads the database no harder through the
    pages than through the API.
    """

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def limited(*args: Any, **kwargs: Any) -> Any:
            decision = services().limiter.hit(client_bucket("reads"), cost)
            g.rate_limit = decision
            if not decision.allowed:
                raise TooManyRequests(
                    "This address asked for more pages than the rate limit allows; wait a little.",
                    retry_after=decision.retry_after,
                )
            return view(*args, **kwargs)

        return limited  # type: ignore[return-value]

    return decorate


def error_page(exc: Exception) -> tuple[Response, int]:
    """An HTML page for any error of a page: its status, what happened, and where to go."""
    if not isinstance(exc, HTTPException):
        log.exception("unhandled error on %s %s", request.method, request.path)
        exc = InternalServerError("The page could not be built. The error is in the service's log.")
    status = exc.code or 500
    if status >= 500:
        g.viewer = None  # the navigation names nobody: the database may be what failed
    body = render_template(
        "pages/error.html", status=status, title=TITLES.get(status, exc.name), message=exc.description or ""
    )
    response = page_headers(Response(body, status=status, mimetype="text/html"))
    response.headers.extend((k, v) for k, v in exc.get_headers() if k.lower() != "content-type")
    if request.blueprint != bp.name:  # a URL of no page: bp's after_request skip it, yet its header names the viewer
        finish_form_page(keep_cookies(response))
    return response, status


def wants_page() -> bool:
    """An unmatched URL (or method) outside the API, asked for by a browser: an HTML error page, not JSON."""
    if request.blueprint is not None:
        return False
    if request.path.split("/")[1] in API_ROOTS:
        return False
    accepts = request.accept_mimetypes
    return bool(accepts.quality("text/html") > accepts.quality("application/json"))


bp.register_error_handler(Exception, error_page)

TEMPLATES = (
    "pages/base.html",
    "pages/_figures.html",
    "pages/overview.html",
    "pages/tool.html",
    "pages/error.html",
    "pages/sign_in.html",
    "pages/account.html",
    "pages/signed_in.html",
    "pages/_admin.html",
    "pages/admin_users.html",
    "pages/admin_user_created.html",
    "pages/admin_teams.html",
    "pages/admin_keys.html",
    "pages/admin_key_created.html",
    "pages/admin_organization.html",
    "pages/dashboards.html",
    "pages/dashboard.html",
    "pages/alerts.html",
    "pages/alert_form.html",
    "pages/alert_delete.html",
    "pages/alert_history.html",
    "pages/_explore.html",
    "pages/explore_agents.html",
    "pages/explore_productivity.html",
    "pages/explore_trends.html",
    "pages/explore_teams.html",
)


class CompiledTemplates(BytecodeCache):
    """Templates compiled once per process, whichever app asks: tests build hundreds of apps in one."""

    def __init__(self) -> None:
        self._code: dict[str, tuple[str, CodeType]] = {}  # by template: its source's checksum, its code

    def load_bytecode(self, bucket: Any) -> None:
        """The code object itself, not marshalled bytes: code is immutable, and unmarshalling 26 templates
        took a tenth of building an app."""
        kept = self._code.get(bucket.key)
        if kept is not None and kept[0] == bucket.checksum:
            bucket.code = kept[1]

    def dump_bytecode(self, bucket: Any) -> None:
        if bucket.code is not None:
            self._code[bucket.key] = (bucket.checksum, bucket.code)


COMPILED = CompiledTemplates()


def compile_templates(app: Flask) -> None:
    """Compile the pages' templates as the app is built: the first visitor after a start would wait
    for it (40 ms and more of a 100 ms budget). Jinja keeps them for the life of the process."""
    app.jinja_env.bytecode_cache = COMPILED
    for name in TEMPLATES:
        app.jinja_env.get_template(name)


@bp.app_context_processor
def navigation() -> dict[str, Any]:
    """What the base layout's header needs: who is signed in (looked up only when it asks), where to sign in."""
    return {"viewer": viewer, "sign_in_link": sign_in_link, "public_pages": services().settings["public_pages"]}


def sign_in_link() -> str:
    """The header's "Sign in": back to this page afterwards when it is a page one can come back to."""
    comes_back = request.method == "GET" and request.blueprint == bp.name and request.endpoint != "pages.sign_in_form"
    return sign_in_url(this_page() if comes_back else None)


@bp.app_template_filter("moment")
def moment(seconds: int) -> str:
    """A Unix time as the pages print times: 2025-11-12 14:03 UTC."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")


@bp.app_template_filter("moment_iso")
def moment_iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@bp.app_template_filter("thousands")
def thousands(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"


@bp.app_template_filter("percent")
def percent(value: float | None) -> str:
    """A share or rate (0-1) as a percentage with one decimal; the API's 4 decimals keep that exact."""
    return "–" if value is None else f"{value * 100:.1f} %"


@bp.app_template_filter("milliseconds")
def milliseconds(value: float | None) -> str:
    return "–" if value is None else f"{decimal(value)} ms"


@bp.app_template_filter("decimal")
def decimal(value: float | None) -> str:
    """A figure with one decimal and thousands separators, its unit in the column heading."""
    return "–" if value is None else f"{value:,.1f}"


@bp.app_template_filter("breakable")
def breakable(name: str) -> Markup:
    """A snake_case name that may wrap after each underscore (a long tool name on a narrow screen)."""
    return Markup("_<wbr>").join(escape(part) for part in name.split("_"))
