"""The /docs page: Swagger UI, vendored under static/vendor/, drawing /openapi.json under a strict CSP."""

from __future__ import annotations

from flask import Blueprint, Response, render_template, url_for

SWAGGER_UI = "vendor/swagger-ui-dist-5.35.0"  # where it came from: its README.md

# Swagger UI needs nothing beyond this: its script and stylesheet are files of ours, its icons
# are data: URIs in that stylesheet, and it fetches /openapi.json (and "Try it out" requests) here.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

bp = Blueprint(
    "docs",
    __name__,
    static_folder="static",
    static_url_path="/docs/static",
    template_folder="templates",
)


@bp.get("/docs")
def page() -> str:
    """The API as a page: Swagger UI on the OpenAPI document."""
    return render_template("docs.html", spec_url=url_for("openapi"), swagger_ui=SWAGGER_UI)


@bp.after_request
def strict_policy(response: Response) -> Response:
    """The page and its files run only scripts and styles of this origin, and are never sniffed."""
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
