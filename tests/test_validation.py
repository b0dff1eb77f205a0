"""The event validator: which batches POST /v1/events accepts, and the exact messages it gives."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support import make_event
from weather_metrics.core.times import parse_timestamp
from weather_metrics.ingest.events.validation import (
    EVENT_FIELDS,
    OPTIONAL_FIELDS,
    REQUIRED_FIELDS,
    batch_problems,
    error_list,
    normalize_country,
)

NOT_STRING = "Must be a string"
NOT_NUMBER = "Must be a number"
NOT_INTEGER = "Must be an integer"
NOT_BOOLEAN = "Must be a boolean"
NOT_OBJECT = "Must be an object"
BAD_VERSION = "Must be a semantic version such as 1.2.3"
BAD_IDENTIFIER = "Must be 1-64 lowercase letters, digits or underscores"
BAD_STATUS = "Must be one of: success, error"
BAD_DATE = "Invalid date format"
BAD_LEVEL = "Must be one of: minimal, standard, detailed"
BAD_RESPONSE_TIME = "Must be between 0 and 3600000"
BAD_RETRY_COUNT = "Must be between 0 and 1000"
BAD_SEQUENCE_NUMBER = "Must be between 0 and 2147483647"
BAD_COUNTRY = "Must be an ISO 3166-1 alpha-2 country code"
BAD_ERROR_TYPE = "Must be 1-64 letters, digits, '_', '.', ':' or '-'"
BAD_SESSION_ID = "Must be 1-128 letters, digits, '_' or '-' (a hashed identifier)"
BATCH_SIZE = "Must contain between 1 and 100 events"


# The contract's own examples, one per analytics level, plus its error event.
CONTRACT_EVENTS = [
    {
        "version": "1.0.0",
        "tool": "get_forecast",
        "status": "success",
        "timestamp_hour": "2025-11-12T20:00:00Z",
        "analytics_level": "minimal",
    },
    {
        "version": "1.0.0",
        "tool": "get_current_conditions",
        "status": "success",
        "timestamp_hour": "2025-11-12T20:00:00Z",
        "analytics_level": "standard",
        "response_time_ms": 120,
        "service": "noaa",
        "cache_hit": True,
        "retry_count": 0,
        "country": "US",
    },
    {
        "version": "1.0.0",
        "tool": "get_alerts",
        "status": "success",
        "timestamp_hour": "2025-11-12T20:00:00Z",
        "analytics_level": "detailed",
        "response_time_ms": 95,
        "service": "openmeteo",
        "cache_hit": False,
        "country": "CA",
        "session_id": "abc123def456",
        "sequence_number": 5,
        "parameters": {"location_type": "coordinates"},
    },
    {
        "version": "1.0.0",
        "tool": "get_forecast",
        "status": "error",
        "timestamp_hour": "2025-11-12T20:00:00Z",
        "analytics_level": "standard",
        "error_type": "NetworkError",
    },
]


def lines_for(event: Any) -> list[str]:
    """The error lines POST /v1/events would answer for a batch of this one event."""
    return error_list(batch_problems({"events": [event]}))


def with_field(name: str, value: Any) -> dict[str, Any]:
    """A valid event with `name` set to `value` (None is kept as JSON null)."""
    event = make_event()
    event[name] = value
    return event


# --- whole events ---------------------------------------------------------------------


@pytest.mark.parametrize("event", CONTRACT_EVENTS, ids=["minimal", "standard", "detailed", "error"])
def test_contract_examples_are_valid(event: dict[str, Any]) -> None:
    assert batch_problems({"events": [event]}) == {}


def test_every_field_of_the_contract_is_accepted_together() -> None:
    event = make_event(
        retry_count=2,
        error_type="TimeoutError",
        status="error",
        session_id="9f86d081884c7d65",
        sequence_number=12,
        parameters={"location_type": "coordinates", "days": 7, "units": "metric", "hourly": True},
        analytics_level="detailed",
    )
    assert set(event) == EVENT_FIELDS
    assert batch_problems({"events": [event]}) == {}


@pytest.mark.parametrize("name", REQUIRED_FIELDS)
def test_missing_required_field_is_reported_as_required(name: str) -> None:
    assert lines_for(make_event(**{name: None})) == [f"events[0].{name}: Required"]


@pytest.mark.parametrize("name", REQUIRED_FIELDS)
def test_null_required_field_must_not_be_null(name: str) -> None:
    assert lines_for(with_field(name, None)) == [f"events[0].{name}: Must not be null"]


@pytest.mark.parametrize("name", OPTIONAL_FIELDS)
def test_null_optional_field_is_accepted(name: str) -> None:
    assert lines_for(with_field(name, None)) == []


def test_minimal_event_without_optional_fields_is_accepted() -> None:
    event = {name: make_event()[name] for name in REQUIRED_FIELDS}
    assert lines_for(event) == []


def test_unknown_event_field_is_reported() -> None:
    assert lines_for(with_field("user_id", "u-1")) == ["events[0].user_id: Unknown field"]


def test_unknown_top_level_field_is_reported() -> None:
    body = {"events": [make_event()], "api_key": "secret"}
    assert error_list(batch_problems(body)) == ["api_key: Unknown field"]


def test_every_problem_of_an_event_is_reported_in_field_order() -> None:
    event = make_event(version=None, status="ok", country="XX", extra=1)
    assert lines_for(event) == [
        f"events[0].country: {BAD_COUNTRY}",
        "events[0].extra: Unknown field",
        f"events[0].status: {BAD_STATUS}",
        "events[0].version: Required",
    ]


def test_contract_validation_example_messages() -> None:
    event = make_event(version=None, timestamp_hour="12/11/2025 20:00")
    assert lines_for(event) == [
        "events[0].timestamp_hour: Invalid date format",
        "events[0].version: Required",
    ]


# --- each field -----------------------------------------------------------------------

FIELD_CASES: list[tuple[str, Any, str | None]] = [
    ("version", "1.0.0", None),
    ("version", "2.10.3-beta.1+build.5", None),
    ("version", "1.0", BAD_VERSION),
    ("version", "v1.0.0", BAD_VERSION),
    ("version", "1.0.0\n", BAD_VERSION),
    ("version", "", BAD_VERSION),
    ("version", 1, NOT_STRING),
    ("tool", "get_weather_summary", None),
    ("tool", "a" * 64, None),
    ("tool", "Get-Forecast", BAD_IDENTIFIER),
    ("tool", "get forecast", BAD_IDENTIFIER),
    ("tool", "a" * 65, BAD_IDENTIFIER),
    ("tool", "", BAD_IDENTIFIER),
    ("tool", ["get_forecast"], NOT_STRING),
    ("status", "success", None),
    ("status", "error", None),
    ("status", "Success", BAD_STATUS),
    ("status", "failed", BAD_STATUS),
    ("status", True, NOT_STRING),
    ("timestamp_hour", "2025-11-12T20:00:00Z", None),
    ("timestamp_hour", "2025-11-12T20:00:00.000Z", None),
    ("timestamp_hour", "2025-11-12T22:00:00+02:00", None),
    ("timestamp_hour", "not a date", BAD_DATE),
    ("timestamp_hour", "2025-13-01T00:00:00Z", BAD_DATE),
    ("timestamp_hour", "", BAD_DATE),
    ("timestamp_hour", 1762977600, NOT_STRING),
    ("analytics_level", "minimal", None),
    ("analytics_level", "detailed", None),
    ("analytics_level", "verbose", BAD_LEVEL),
    ("analytics_level", "Standard", BAD_LEVEL),
    ("response_time_ms", 0, None),
    ("response_time_ms", 150.5, None),
    ("response_time_ms", 3_600_000, None),
    ("response_time_ms", -1, BAD_RESPONSE_TIME),
    ("response_time_ms", 3_600_001, BAD_RESPONSE_TIME),
    ("response_time_ms", "150", NOT_NUMBER),
    ("response_time_ms", True, NOT_NUMBER),
    ("response_time_ms", float("nan"), NOT_NUMBER),
    ("response_time_ms", float("inf"), NOT_NUMBER),
    ("service", "noaa", None),
    ("service", "openmeteo", None),
    ("service", "nifc", None),
    ("service", "usgs", None),
    ("service", "NOAA", BAD_IDENTIFIER),
    ("service", "open-meteo", BAD_IDENTIFIER),
    ("service", 1, NOT_STRING),
    ("cache_hit", True, None),
    ("cache_hit", False, None),
    ("cache_hit", "true", NOT_BOOLEAN),
    ("cache_hit", 1, NOT_BOOLEAN),
    ("cache_hit", 0, NOT_BOOLEAN),
    ("retry_count", 0, None),
    ("retry_count", 1000, None),
    ("retry_count", -1, BAD_RETRY_COUNT),
    ("retry_count", 1001, BAD_RETRY_COUNT),
    ("retry_count", 1.5, NOT_INTEGER),
    ("retry_count", "0", NOT_INTEGER),
    ("retry_count", False, NOT_INTEGER),
    ("country", "US", None),
    ("country", "CA", None),
    ("country", "us", None),
    ("country", "XX", BAD_COUNTRY),
    ("country", "UK", BAD_COUNTRY),
    ("country", "USA", BAD_COUNTRY),
    ("country", "", BAD_COUNTRY),
    ("country", 840, NOT_STRING),
    ("error_type", "NetworkError", None),
    ("error_type", "urllib3.exceptions:ReadTimeout-2", None),
    ("error_type", "Network Error", BAD_ERROR_TYPE),
    ("error_type", "E" * 65, BAD_ERROR_TYPE),
    ("error_type", "", BAD_ERROR_TYPE),
    ("session_id", "abc123def456", None),
    ("session_id", "a" * 128, None),
    ("session_id", "a" * 129, BAD_SESSION_ID),
    ("session_id", "user@example.com", BAD_SESSION_ID),
    ("session_id", 123, NOT_STRING),
    ("sequence_number", 0, None),
    ("sequence_number", 2**31 - 1, None),
    ("sequence_number", 2**31, BAD_SEQUENCE_NUMBER),
    ("sequence_number", -1, BAD_SEQUENCE_NUMBER),
    ("sequence_number", 5.0, NOT_INTEGER),
    ("sequence_number", True, NOT_INTEGER),
    ("parameters", {}, None),
    ("parameters", {"location_type": "coordinates"}, None),
    ("parameters", [], NOT_OBJECT),
    ("parameters", "location_type=coordinates", NOT_OBJECT),
]


@pytest.mark.parametrize(("name", "value", "message"), FIELD_CASES)
def test_field_values(name: str, value: Any, message: str | None) -> None:
    expected = [] if message is None else [f"events[0].{name}: {message}"]
    assert lines_for(with_field(name, value)) == expected


# --- the batch ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, ["events: Required"]),
        ({"events": None}, ["events: Must not be null"]),
        ({"events": {"0": {}}}, ["events: Must be an array"]),
        ({"events": "[]"}, ["events: Must be an array"]),
        ({"events": []}, [f"events: {BATCH_SIZE}"]),
        ({"events": [make_event()] * 101}, [f"events: {BATCH_SIZE}"]),
        ([make_event()], ["body: Must be an object"]),
        ("events", ["body: Must be an object"]),
        (None, ["body: Must be an object"]),
    ],
    ids=["missing", "null", "object", "string", "empty", "101", "array body", "string body", "null body"],
)
def test_batch_problems(body: Any, expected: list[str]) -> None:
    assert error_list(batch_problems(body)) == expected


@pytest.mark.parametrize("size", [1, 100])
def test_batch_of_1_to_100_events_is_accepted(size: int) -> None:
    assert batch_problems({"events": [make_event() for _ in range(size)]}) == {}


def test_events_that_are_not_objects_are_reported_by_index() -> None:
    body = {"events": [make_event(), 1, "event", None, [make_event()]]}
    assert error_list(batch_problems(body)) == [
        "events[1]: Must be an object",
        "events[2]: Must be an object",
        "events[3]: Must be an object",
        "events[4]: Must be an object",
    ]


def test_error_lines_follow_event_index_numerically() -> None:
    events = [make_event() for _ in range(12)]
    events[2]["tool"] = "Bad"
    events[10]["tool"] = "Bad"
    events[11]["status"] = "bad"
    assert error_list(batch_problems({"events": events})) == [
        f"events[2].tool: {BAD_IDENTIFIER}",
        f"events[10].tool: {BAD_IDENTIFIER}",
        f"events[11].status: {BAD_STATUS}",
    ]


def test_error_list_copes_with_unicode_digits_in_unknown_field_names() -> None:
    problems = batch_problems({"events": [make_event()], "²": 1})
    assert error_list(problems) == ["²: Unknown field"]


def test_response_time_beyond_float_range_is_out_of_range() -> None:
    assert lines_for(with_field("response_time_ms", 10**400)) == [f"events[0].response_time_ms: {BAD_RESPONSE_TIME}"]


# --- timestamps and countries -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-11-12T20:00:00Z", datetime(2025, 11, 12, 20, tzinfo=UTC)),
        ("2025-11-12T20:00:00.000Z", datetime(2025, 11, 12, 20, tzinfo=UTC)),
        ("2025-11-12T22:00:00+02:00", datetime(2025, 11, 12, 20, tzinfo=UTC)),
        ("2025-11-12T15:00:00-05:00", datetime(2025, 11, 12, 20, tzinfo=UTC)),
        ("2025-11-12T20:00:00", datetime(2025, 11, 12, 20, tzinfo=UTC)),
    ],
)
def test_parse_timestamp_gives_utc(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed is not None and parsed.utcoffset() == UTC.utcoffset(None)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2025",
        "not a date",
        "2025-11-31T20:00:00Z",
        "2025-11-12T25:00:00Z",
        "12/11/2025 20:00",
        "2025-11-12T20:00:00Z" + " " * 30,
    ],
)
def test_parse_timestamp_rejects_non_dates(text: str) -> None:
    assert parse_timestamp(text) is None


@pytest.mark.parametrize("text", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
def test_timestamp_whose_utc_time_is_out_of_range_is_an_invalid_date(text: str) -> None:
    assert lines_for(with_field("timestamp_hour", text)) == [f"events[0].timestamp_hour: {BAD_DATE}"]


@pytest.mark.parametrize(("code", "expected"), [("US", "US"), ("us", "US"), ("gB", "GB"), ("ca", "CA")])
def test_normalize_country_upper_cases_assigned_codes(code: str, expected: str) -> None:
    assert normalize_country(code) == expected


@pytest.mark.parametrize("code", ["XX", "UK", "EU", "USA", "U", "", "ZZ"])
def test_normalize_country_rejects_unassigned_codes(code: str) -> None:
    assert normalize_country(code) is None
