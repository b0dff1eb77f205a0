"""Building blocks of /openapi.json, shared by the surfaces; each route module lists its own PATHS (web/docs.py)."""

from __future__ import annotations

from typing import Any

# Security requirements: any one of the listed schemes (web/docs.py SECURITY_SCHEMES) lets a request in.
PUBLIC: list[dict[str, list[str]]] = []
BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]
API_KEY: list[dict[str, list[str]]] = [{"apiKey": []}, {"apiKeyBearer": []}]
# The organization-wide reads also take an API key of the read scope in X-API-Key.
BEARER_OR_READ_KEY: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"apiKey": []}]

API_ERROR = "ApiError"  # the error body of /api, /mcp and /ws (web/errors.py)
API_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details", "timestamp", "request_id"],
            "properties": {
                "code": {"type": "string", "example": "VALIDATION_ERROR"},
                "message": {"type": "string"},
                "details": {
                    "type": "object",
                    "additionalProperties": True,
                    "description": "Per-field messages, by field name or path (such as layout.2.metric)",
                },
                "timestamp": {"type": "string", "format": "date-time"},
                "request_id": {"type": "string", "description": "Also in the X-Request-ID header"},
            },
        }
    },
}

# What most /api and /mcp operations can answer besides their own errors.
UNAUTHORIZED = {"401": "Missing, invalid or expired credentials"}
RATE_LIMITED = {"429": "Rate limit exceeded; see Retry-After"}
TOO_LARGE = {"413": "Request body too large"}


def without(errors: dict[str, str], *codes: str) -> dict[str, str]:
    """`errors` but `codes`."""
    return {code: why for code, why in errors.items() if code not in codes}


def ref(component: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{component}"}


def required_object(properties: dict[str, Any]) -> dict[str, Any]:
    """A JSON object that always has each of `properties`, and nothing else."""
    return {"type": "object", "required": list(properties), "properties": properties, "additionalProperties": False}


def json_content(schema: str | dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def path_id(name: str, what: str) -> dict[str, Any]:
    """A path parameter holding the id of `what`."""
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "minLength": 1},
        "description": f"The {what}'s id",
    }


def query(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": "query", "required": False, "schema": schema}
    return {**param, "description": description} if description else param


def operation(
    summary: str,
    tag: str,
    ok: str,
    answer: str | dict[str, Any] | None,
    errors: dict[str, str],
    *,
    body: str | dict[str, Any] | None = None,
    security: list[dict[str, list[str]]] = BEARER,
    error_schema: str = API_ERROR,
    **extra: Any,
) -> dict[str, Any]:
    """An operation answering `ok` ("201 The new user") with `answer` (None: no body), or `errors` (status: why).

    `extra` adds fields of the operation (parameters, description, responses to merge).
    """
    status, _, description = ok.partition(" ")
    success: dict[str, Any] = {"description": description}
    if answer is not None:
        success["content"] = json_content(answer)
    responses: dict[str, Any] = {status: success}
    for code, why in sorted(errors.items()):
        responses[code] = {"description": why, "content": json_content(error_schema)}
    responses.update(extra.pop("responses", {}))
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "security": security, "responses": responses, **extra}
    if body is not None:
        op["requestBody"] = {"required": True, "content": json_content(body)}
    return op
