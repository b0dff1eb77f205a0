"""Strict marshmallow fields: JSON types as sent, no coercion; shared by every surface's schemas.

The messages are the hot-path validators' too (ingest/events/validation.py, ingest/org/validation.py).
"""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, fields

# Messages shared with the marshmallow schema.
REQUIRED = "Required"
NOT_NULL = "Must not be null"
UNKNOWN = "Unknown field"
NOT_OBJECT = "Must be an object"
NOT_ARRAY = "Must be an array"
NOT_STRING = "Must be a string"
NOT_NUMBER = "Must be a number"
NOT_INTEGER = "Must be an integer"
NOT_BOOLEAN = "Must be a boolean"


class StrictString(fields.String):
    default_error_messages = {"invalid": NOT_STRING}


class StrictNumber(fields.Float):
    """A JSON number; strings and booleans are refused."""

    default_error_messages = {"invalid": NOT_NUMBER, "special": NOT_NUMBER}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, (str, bool)):
            raise self.make_error("invalid")
        if isinstance(value, int):
            return value  # exact, however large; the range check decides
        return super()._deserialize(value, attr, data, **kwargs)


class StrictInteger(fields.Integer):
    default_error_messages = {"invalid": NOT_INTEGER}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class StrictBoolean(fields.Boolean):
    default_error_messages = {"invalid": NOT_BOOLEAN}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class StrictSchema(Schema):
    error_messages = {"unknown": UNKNOWN, "type": NOT_OBJECT}

    class Meta:
        unknown = RAISE
