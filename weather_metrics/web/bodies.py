"""Reading request bodies for every surface: a size limit that holds without Content-Length, and JSON objects."""

from __future__ import annotations

from typing import Any

from flask import g, request
from marshmallow import Schema, ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from weather_metrics.core.strictjson import MalformedJson, NotText, parse_json
from weather_metrics.web.errors import ApiProblem
from weather_metrics.web.nul import nul_problems


def read_body(limit: int) -> bytes:
    """The request body, read once per request; 413 past `limit` bytes, whether or not Content-Length was sent."""
    if "raw_body" not in g:
        too_large = RequestEntityTooLarge(f"Request body exceeds {limit} bytes")
        if request.content_length is not None and request.content_length > limit:
            raise too_large
        raw = request.stream.read(limit + 1)
        if len(raw) > limit:
            raise too_large
        g.raw_body = raw
    return g.raw_body  # type: ignore[no-any-return]


MAX_BODY_BYTES = 64 * 1024


def peek_body() -> dict[str, Any]:
    """The body's JSON object for rate-limit keys, before the view runs; {} when there is none."""
    try:
        body = parse_json(read_body(MAX_BODY_BYTES))
    except (MalformedJson, RequestEntityTooLarge):
        return {}
    return body if isinstance(body, dict) else {}


def json_body(schema: Schema) -> dict[str, Any]:
    """The request's JSON object, loaded by `schema`; 400 listing every bad field."""
    try:
        data = parse_json(read_body(MAX_BODY_BYTES) or b"null", strict=True)
    except NotText:
        raise ApiProblem(400, "Request body holds a string that is not valid Unicode") from None
    except MalformedJson:
        raise ApiProblem(400, "Malformed JSON") from None
    if not isinstance(data, dict):
        raise ApiProblem(400, "Request body must be a JSON object")
    problems = nul_problems(data)
    if problems:
        raise ApiProblem(400, "Request validation failed", problems)
    return load(schema, data)


def load(schema: Schema, data: Any) -> dict[str, Any]:
    try:
        return schema.load(data)  # type: ignore[no-any-return]
    except ValidationError as exc:
        raise ApiProblem(400, "Request validation failed", _first_messages(exc.messages)) from None


def _first_messages(messages: Any) -> dict[str, Any]:
    if isinstance(messages, list):
        return {"_body": messages[0]}
    return {k: (v[0] if isinstance(v, list) else _first_messages(v)) for k, v in messages.items()}
