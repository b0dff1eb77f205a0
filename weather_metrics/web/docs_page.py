"""The /docs page: Swagger UI, vendored under static/vendor/, drawing /openapi.json under a strict CSP."""

from __future__ import annotations

from flask import Blueprint, render_template, url_for

from weather_metrics.web.pages.policy import protect

SWAGGER_UI = "vendor/swagger-ui-dist-5.35.0"  # where it came from: its README.md

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


# Swagger UI needs nothing beyond the pages' policy: its script and stylesheet are files of ours, its
# icons are data: URIs in that stylesheet, and it fetches /openapi.json (and "Try it out" requests) here.
protect(bp)
