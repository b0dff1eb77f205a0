"""The headers of every page and its files: a strict Content-Security-Policy and no type sniffing.

Pages (web/pages/) and /docs (web/docs_page.py) run scripts and styles of this origin only: no
inline script or style, nothing from another host. Chart data travels in JSON data blocks
(<script type="application/json">), which the browser never executes.
"""

from __future__ import annotations

from flask import Blueprint, Response

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def page_headers(response: Response) -> Response:
    """Scripts, styles, images and requests of this origin only; files never sniffed as another type."""
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def protect(bp: Blueprint) -> None:
    """Every answer of `bp`, its pages, files and error pages, gets the page headers."""
    bp.after_request(page_headers)
