"""The hot-path validator for POST /v1/events, and the window of timestamps the service keeps.

ingest/events/schemas.py's EventBatchSchema is the documented contract; this module checks
the same rules in plain Python (~25x faster), and tests/test_validation_equivalence.py
shows with hypothesis that both accept and reject the same batches with the same messages.
Both call one privacy filter for `parameters` (ingest/events/parameters.py).
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import Any

from weather_metrics.core.countries import ISO_COUNTRY_CODES
from weather_metrics.core.fields import (  # noqa: F401 - the messages of this validator
    NOT_ARRAY,
    NOT_BOOLEAN,
    NOT_INTEGER,
    NOT_NULL,
    NOT_NUMBER,
    NOT_OBJECT,
    NOT_STRING,
    REQUIRED,
    UNKNOWN,
)
from weather_metrics.core.times import parse_timestamp
from weather_metrics.ingest.events.parameters import parameters_problems

MAX_FUTURE = timedelta(hours=1)


def window_problems(events: list[dict[str, Any]], now: datetime, retention_days: int) -> dict[str, str]:
    """Timestamps outside what the service keeps: more than an hour ahead, or past retention."""
    latest = now + MAX_FUTURE
    earliest = (now - timedelta(days=retention_days)).replace(minute=0, second=0, microsecond=0)
    problems = {}
    for index, event in enumerate(events):
        moment = parse_timestamp(event["timestamp_hour"])
        assert moment is not None  # validated before
        if moment > latest:
            problems[f"events[{index}].timestamp_hour"] = "Must not be more than 1 hour in the future"
        elif moment < earliest:
            problems[f"events[{index}].timestamp_hour"] = f"Older than the {retention_days}-day retention"
    return problems


MAX_EVENTS = 100
MAX_RESPONSE_TIME_MS = 3_600_000
MAX_RETRY_COUNT = 1000
MAX_SEQUENCE_NUMBER = 2**31 - 1
STATUSES = ("success", "error")
LEVELS = ("minimal", "standard", "detailed")
REQUIRED_FIELDS = ("version", "tool", "status", "timestamp_hour", "analytics_level")
OPTIONAL_FIELDS = (
    "response_time_ms",
    "service",
    "cache_hit",
    "retry_count",
    "country",
    "error_type",
    "session_id",
    "sequence_number",
    "parameters",
)


EVENT_FIELDS = frozenset(REQUIRED_FIELDS + OPTIONAL_FIELDS)
SEMVER = re.compile(r"\d{1,9}\.\d{1,9}\.\d{1,9}(?:-[0-9A-Za-z.-]{1,32})?(?:\+[0-9A-Za-z.-]{1,32})?")
IDENTIFIER = re.compile(r"[a-z0-9_]{1,64}")
ERROR_TYPE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
BATCH_SIZE = f"Must contain between 1 and {MAX_EVENTS} events"
BAD_VERSION = "Must be a semantic version such as 1.2.3"
BAD_IDENTIFIER = "Must be 1-64 lowercase letters, digits or underscores"
BAD_STATUS = "Must be one of: success, error"
BAD_DATE = "Invalid date format"
BAD_LEVEL = "Must be one of: minimal, standard, detailed"
BAD_RESPONSE_TIME = f"Must be between 0 and {MAX_RESPONSE_TIME_MS}"
BAD_RETRY_COUNT = f"Must be between 0 and {MAX_RETRY_COUNT}"
BAD_SEQUENCE_NUMBER = f"Must be between 0 and {MAX_SEQUENCE_NUMBER}"
BAD_COUNTRY = "Must be an ISO 3166-1 alpha-2 country code"
BAD_ERROR_TYPE = "Must be 1-64 letters, digits, '_', '.', ':' or '-'"
BAD_SESSION_ID = "Must be 1-128 letters, digits, '_' or '-' (a hashed identifier)"


def normalize_country(value: str) -> str | None:
    """The upper-case code when `value` is an assigned ISO 3166-1 alpha-2 code."""
    code = value.upper()
    return code if code in ISO_COUNTRY_CODES else None


def _is_number(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_string(value: Any, pattern: re.Pattern[str], message: str) -> str | None:
    if not isinstance(value, str):
        return NOT_STRING
    return None if pattern.fullmatch(value) else message


def _check_choice(value: Any, choices: tuple[str, ...], message: str) -> str | None:
    if not isinstance(value, str):
        return NOT_STRING
    return None if value in choices else message


def _check_range(value: Any, integer: bool, high: float, message: str) -> str | None:
    if integer and not _is_integer(value):
        return NOT_INTEGER
    if not integer and not _is_number(value):
        return NOT_NUMBER
    return None if 0 <= value <= high else message


def _check_timestamp(value: Any) -> str | None:
    if not isinstance(value, str):
        return NOT_STRING
    return None if parse_timestamp(value) else BAD_DATE


def _check_country(value: Any) -> str | None:
    if not isinstance(value, str):
        return NOT_STRING
    return None if normalize_country(value) else BAD_COUNTRY


def _check_boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else NOT_BOOLEAN


FIELD_CHECKS = {
    "version": lambda v: _check_string(v, SEMVER, BAD_VERSION),
    "tool": lambda v: _check_string(v, IDENTIFIER, BAD_IDENTIFIER),
    "status": lambda v: _check_choice(v, STATUSES, BAD_STATUS),
    "timestamp_hour": _check_timestamp,
    "analytics_level": lambda v: _check_choice(v, LEVELS, BAD_LEVEL),
    "response_time_ms": lambda v: _check_range(v, False, MAX_RESPONSE_TIME_MS, BAD_RESPONSE_TIME),
    "service": lambda v: _check_string(v, IDENTIFIER, BAD_IDENTIFIER),
    "cache_hit": _check_boolean,
    "retry_count": lambda v: _check_range(v, True, MAX_RETRY_COUNT, BAD_RETRY_COUNT),
    "country": _check_country,
    "error_type": lambda v: _check_string(v, ERROR_TYPE, BAD_ERROR_TYPE),
    "session_id": lambda v: _check_string(v, SESSION_ID, BAD_SESSION_ID),
    "sequence_number": lambda v: _check_range(v, True, MAX_SEQUENCE_NUMBER, BAD_SEQUENCE_NUMBER),
}


def _event_problems(event: Any, path: str, errors: dict[str, str]) -> None:
    if not isinstance(event, dict):
        errors[path] = NOT_OBJECT
        return
    for key in event.keys() - EVENT_FIELDS:
        errors[f"{path}.{key}"] = UNKNOWN
    for name in REQUIRED_FIELDS:
        if name not in event:
            errors[f"{path}.{name}"] = REQUIRED
    for name, value in event.items():
        if value is None:
            if name in REQUIRED_FIELDS:
                errors[f"{path}.{name}"] = NOT_NULL
            continue
        check = FIELD_CHECKS.get(name)
        if check is not None:
            problem = check(value)
            if problem:
                errors[f"{path}.{name}"] = problem
        elif name == "parameters":
            problems = parameters_problems(value)
            if isinstance(problems, dict):
                for key, message in problems.items():
                    errors[f"{path}.parameters.{key}"] = message
            elif problems:
                errors[f"{path}.parameters"] = problems


def batch_problems(body: Any) -> dict[str, str]:
    """Every problem of a request body, as {path: message}; empty when it is valid."""
    if not isinstance(body, dict):
        return {"body": NOT_OBJECT}
    errors = {key: UNKNOWN for key in body if key != "events"}
    if "events" not in body:
        errors["events"] = REQUIRED
        return errors
    events = body["events"]
    if events is None:
        errors["events"] = NOT_NULL
    elif not isinstance(events, list):
        errors["events"] = NOT_ARRAY
    elif not 1 <= len(events) <= MAX_EVENTS:
        errors["events"] = BATCH_SIZE
    else:
        for index, event in enumerate(events):
            _event_problems(event, f"events[{index}]", errors)
    return errors


_NATURAL = re.compile(r"([0-9]+)")


def error_list(errors: dict[str, str]) -> list[str]:
    """`path: message` lines in a stable order (events by index, then field name)."""

    def natural(path: str) -> list[Any]:
        return [int(part) if part.isascii() and part.isdigit() else part for part in _NATURAL.split(path)]

    return [f"{path}: {errors[path]}" for path in sorted(errors, key=natural)]
