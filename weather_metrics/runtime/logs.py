"""What logs may show: request lines with the values of credential parameters redacted."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

SECRET_PARAMETERS = frozenset({"token", "access_token", "ticket"})


def redact_query(query: str) -> str:
    """The query string with the values of credential parameters replaced (names are compared decoded)."""
    if not query:
        return query
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(name in SECRET_PARAMETERS for name, _ in pairs):
        return query
    return urlencode([(k, "[redacted]" if k in SECRET_PARAMETERS else v) for k, v in pairs], safe="[]/:,")
