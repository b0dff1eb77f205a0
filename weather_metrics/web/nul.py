"""NUL characters in what a request names or sends: refused before any query, alike on both backends.

PostgreSQL's text cannot hold U+0000 (its driver refuses a statement with such a parameter),
while SQLite stores it. No id, name or value of this service holds one, so a path with a NUL
names nothing (404), and a query string of the JSON surfaces (400) or a JSON body of /api and
/mcp/hooks (400, see `nul_problems`) holding one is refused, whichever database is behind.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request
from werkzeug.exceptions import BadRequest, NotFound

NUL = "\x00"
MESSAGE = "Must not contain a NUL character (\\u0000)."
# The pages read their query values (a period, where to go after signing in) without the database.
SURFACES_WITH_QUERIES = {"v1", "api", "mcp", "ws"}


def holds_nul(value: Any) -> bool:
    """Whether a JSON value has a NUL character in any string, key or value, at any depth."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if NUL in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return False


def nul_problems(body: Any) -> dict[str, str]:
    """The top-level fields of a JSON body that hold a NUL character, each with the message; empty when none."""
    if isinstance(body, dict):
        return {str(key): MESSAGE for key, value in body.items() if holds_nul(key) or holds_nul(value)}
    return {"_body": MESSAGE} if holds_nul(body) else {}


def init_app(app: Flask) -> None:
    """Refuse paths and query strings with a NUL character before any view (or blueprint hook) looks one up."""

    @app.before_request
    def refuse_nul() -> None:
        if NUL in request.path:
            raise NotFound()
        if request.blueprint in SURFACES_WITH_QUERIES and holds_nul(list(request.args.items(multi=True))):
            raise BadRequest("Query parameters must not contain a NUL character (%00)")
