"""Building blocks of the /api OpenAPI operations (each resource module lists its own PATHS)."""

from __future__ import annotations

from typing import Any

BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]
# The organization-wide reads also take an API key of the read scope in X-API-Key.
BEARER_OR_READ_KEY: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"apiKey": []}]
ERROR = {"application/json": {"schema": "ApiError"}}


def operation(
    summary: str, ok: str, errors: dict[str, str], body: str | None = None, auth: bool = True, **extra: Any
) -> dict[str, Any]:
    """An operation answering `ok` ("201 Rule") or one of `errors` (status: meaning) in the /api error format."""
    responses: dict[str, Any] = {ok.split(" ")[0]: {"description": ok}}
    responses.update({code: {"description": text, "content": ERROR} for code, text in errors.items()})
    op: dict[str, Any] = {"summary": summary, "responses": responses, **extra}
    if auth:
        op["security"] = BEARER
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op
