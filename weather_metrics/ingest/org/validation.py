"""Validation of organization metrics: the hot-path checks of agent executions and productivity metrics.

Plain Python, ~25x faster than marshmallow: `web/api/ingest_schemas.py` holds the contract, and
tests/test_org_validation_equivalence.py holds both to the same verdicts and messages.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import Any

from weather_metrics.core.times import parse_timestamp
from weather_metrics.core.vocabulary import (
    AGENT_FIELDS,
    BAD_METRIC_TYPE,
    MAX_ABS_VALUE,
    MAX_AGENT_NAME,
    MAX_COMMAND,
    MAX_ERROR_DETAILS,
    MAX_EXECUTION_MS,
    MAX_IDENTIFIER,
    MAX_METADATA_BYTES,
    MAX_SESSION_ID,
    METRIC_TYPE,
    PRODUCTIVITY_FIELDS,
    dump_json,
)

# Messages shared with the marshmallow contract.
REQUIRED = "Missing data for required field."
UNKNOWN = "Unknown field."
NOT_OBJECT = "Must be an object."
NOT_STRING = "Must be a string."
NOT_NUMBER = "Must be a finite number."
NOT_BOOLEAN = "Must be a boolean."
NOT_TIMESTAMP = "Must be an ISO 8601 date-time."
BAD_TEXT = "Must not contain control characters."
TOO_MUCH_METADATA = f"Must be at most {MAX_METADATA_BYTES} bytes of JSON."


def length_message(low: int, high: int) -> str:
    return f"Length must be between {low} and {high}."


def range_message(low: float, high: float) -> str:
    return f"Must be between {_plain(low)} and {_plain(high)}."


def _plain(number: float) -> str:
    """86400000 rather than 8.64e+07: the figure a reader compares with /mcp/config."""
    return str(int(number)) if float(number).is_integer() else str(number)


# Refused in text: C0 controls except tab, newline and carriage return, and DEL.
CONTROL_CHARACTERS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
_CONTROL = re.compile(f"[{CONTROL_CHARACTERS}]")


def _text(item: dict[str, Any], name: str, low: int, high: int, problems: dict[str, str], prefix: str) -> None:
    value = item.get(name)
    if value is None:
        return
    if not isinstance(value, str):
        problems[prefix + name] = NOT_STRING
    elif not low <= len(value) <= high:
        problems[prefix + name] = length_message(low, high)
    elif _CONTROL.search(value):
        problems[prefix + name] = BAD_TEXT


def _required(item: dict[str, Any], names: tuple[str, ...], problems: dict[str, str], prefix: str) -> None:
    for name in names:
        if item.get(name) is None:
            problems[prefix + name] = REQUIRED


def _metadata(item: dict[str, Any], problems: dict[str, str], prefix: str, texts: dict[str, str] | None) -> None:
    value = item.get("metadata")
    if value is None:
        return
    if not isinstance(value, dict):
        problems[prefix + "metadata"] = NOT_OBJECT
        return
    text = dump_json(value)
    if len(text.encode()) > MAX_METADATA_BYTES:
        problems[prefix + "metadata"] = TOO_MUCH_METADATA
    elif texts is not None:
        texts[prefix] = text  # the row stores this text: serialize once


def metadata_size(value: dict[str, Any]) -> int:
    """The size `metadata` is held to: its bytes as stored (compact UTF-8 JSON)."""
    return len(dump_json(value).encode())


def _number(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int) and not isinstance(value, bool)


def _timestamp(item: dict[str, Any], window: tuple[datetime, datetime], problems: dict[str, str], prefix: str) -> None:
    value = item.get("timestamp")
    if value is None:
        return
    moment = parse_timestamp(value) if isinstance(value, str) else None
    if moment is None:
        problems[prefix + "timestamp"] = NOT_TIMESTAMP
    elif moment > window[1]:
        problems[prefix + "timestamp"] = "Must not be in the future (beyond the allowed clock skew)."
    elif moment < window[0]:
        problems[prefix + "timestamp"] = "Older than the retention period."


def accepted_window(now: datetime, retention_days: int, skew_seconds: int) -> tuple[datetime, datetime]:
    """The earliest and latest timestamps the service accepts at `now`."""
    return now - timedelta(days=retention_days), now + timedelta(seconds=skew_seconds)


def agent_problems(
    item: Any, window: tuple[datetime, datetime], prefix: str = "", texts: dict[str, str] | None = None
) -> dict[str, str]:
    """What is wrong with one agent execution, by field; empty when it is valid.

    `texts`, when given, receives the metadata's stored JSON under `prefix`.
    """
    if not isinstance(item, dict):
        return {prefix.rstrip(".") or "_body": NOT_OBJECT}
    problems: dict[str, str] = {}
    for name in item.keys() - AGENT_FIELDS:
        problems[prefix + name] = UNKNOWN
    _required(item, ("agent_name", "command", "execution_time_ms", "success", "timestamp"), problems, prefix)
    _text(item, "agent_name", 1, MAX_AGENT_NAME, problems, prefix)
    _text(item, "command", 1, MAX_COMMAND, problems, prefix)
    _text(item, "session_id", 1, MAX_SESSION_ID, problems, prefix)
    _text(item, "user_identifier", 1, MAX_IDENTIFIER, problems, prefix)
    _text(item, "user_id", 1, MAX_IDENTIFIER, problems, prefix)
    _text(item, "error_details", 0, MAX_ERROR_DETAILS, problems, prefix)
    duration = item.get("execution_time_ms")
    if duration is not None:
        if not _number(duration):
            problems[prefix + "execution_time_ms"] = NOT_NUMBER
        elif not 0 <= duration <= MAX_EXECUTION_MS:
            problems[prefix + "execution_time_ms"] = range_message(0, MAX_EXECUTION_MS)
    success = item.get("success")
    if success is not None and not isinstance(success, bool):
        problems[prefix + "success"] = NOT_BOOLEAN
    _metadata(item, problems, prefix, texts)
    _timestamp(item, window, problems, prefix)
    return problems


def productivity_problems(
    item: Any, window: tuple[datetime, datetime], prefix: str = "", texts: dict[str, str] | None = None
) -> dict[str, str]:
    """What is wrong with one productivity metric, by field; empty when it is valid."""
    if not isinstance(item, dict):
        return {prefix.rstrip(".") or "_body": NOT_OBJECT}
    problems: dict[str, str] = {}
    for name in item.keys() - PRODUCTIVITY_FIELDS:
        problems[prefix + name] = UNKNOWN
    _required(item, ("timestamp", "type", "value"), problems, prefix)
    kind = item.get("type")
    if kind is not None and not (isinstance(kind, str) and METRIC_TYPE.fullmatch(kind)):
        problems[prefix + "type"] = BAD_METRIC_TYPE
    value = item.get("value")
    if value is not None:
        if not _number(value):
            problems[prefix + "value"] = NOT_NUMBER
        elif not -MAX_ABS_VALUE <= value <= MAX_ABS_VALUE:
            problems[prefix + "value"] = range_message(-MAX_ABS_VALUE, MAX_ABS_VALUE)
    _text(item, "user_id", 1, MAX_IDENTIFIER, problems, prefix)
    _text(item, "team_id", 1, MAX_IDENTIFIER, problems, prefix)
    _metadata(item, problems, prefix, texts)
    _timestamp(item, window, problems, prefix)
    return problems
