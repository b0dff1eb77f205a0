"""The hot-path validator and the marshmallow contract agree on every batch; the compiled path stores as they do."""

from __future__ import annotations

import json
import string
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from weather_metrics.core.strictjson import MalformedJson, parse_json
from weather_metrics.ingest.events.compiled import accepted_rows
from weather_metrics.ingest.events.schemas import contract_problems
from weather_metrics.ingest.events.validation import EVENT_FIELDS, REQUIRED_FIELDS, batch_problems, window_problems
from weather_metrics.store.events import event_row

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=80),
)
anything = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)

PARAMETER_KEYS = "location_type days units latitude userEmail ip x 1bad Days gps email_kind".split()
PARAMETER_TEXTS = ["coordinates", "metric", "40.7128N", "John.Smith", "a@b.co", "New York", "", "x" * 33]

# Plausible and implausible values for each field, so both branches of every check run.
FIELD_VALUES = {
    "version": st.sampled_from(["1.0.0", "2.10.3-beta.1", "1.0", "v1.0.0", "1.0.0\n", ""]),
    "tool": st.sampled_from(["get_forecast", "get_weather_summary", "Get-Forecast", "a" * 65, "x"]),
    "status": st.sampled_from(["success", "error", "Success", "ok"]),
    "timestamp_hour": st.sampled_from(
        ["2026-11-12T20:00:00Z", "2026-11-12T20:15:00+02:00", "2026-11-12", "12/11/2026", "2026-13-01T00:00:00Z", ""]
    ),
    "analytics_level": st.sampled_from(["minimal", "standard", "detailed", "full"]),
    "response_time_ms": st.one_of(st.floats(min_value=-10, max_value=4_000_000), st.integers(-5, 4_000_000)),
    "service": st.sampled_from(["noaa", "openmeteo", "nifc", "usgs", "NOAA", "no aa"]),
    "cache_hit": st.sampled_from([True, False, 0, 1, "true"]),
    "retry_count": st.one_of(st.integers(-2, 1002), st.sampled_from([1.0, 2.5])),
    "country": st.sampled_from(["US", "ca", "GB", "UK", "XX", "USA", ""]),
    "error_type": st.sampled_from(["NetworkError", "timeout.read", "Network Error", "", "e" * 65]),
    "session_id": st.sampled_from(["abc123def456", "a-b_c", "has space", "x" * 129]),
    "sequence_number": st.integers(-1, 2**31),
    "parameters": st.one_of(
        st.dictionaries(
            st.sampled_from(PARAMETER_KEYS),
            st.one_of(
                st.sampled_from(PARAMETER_TEXTS),
                st.integers(-1100, 1100),
                st.sampled_from([7, 7.0, 1, 1.0, True, 2130706433]),
                st.floats(min_value=-200, max_value=200),
                st.booleans(),
                st.none(),
                st.lists(st.integers(), max_size=2),
            ),
            max_size=4,
        ),
        # Keys of [a-z]{1,6}, drawn as text: from_regex takes twice as long for the same strings.
        st.dictionaries(
            st.text(string.ascii_lowercase, min_size=1, max_size=6), st.integers(), min_size=21, max_size=22
        ),
    ),
}


@st.composite
def events(draw):  # type: ignore[no-untyped-def]
    event = {}
    for name, values in FIELD_VALUES.items():
        choice = draw(st.integers(0, 9))
        if choice == 0:
            continue  # field absent
        event[name] = draw(anything) if choice == 1 else draw(values)
    if draw(st.integers(0, 9)) == 0:
        event[draw(st.text(min_size=1, max_size=8).filter(lambda k: k not in EVENT_FIELDS))] = draw(scalars)
    return event


bodies = st.one_of(
    st.fixed_dictionaries({"events": st.lists(events(), min_size=1, max_size=4)}),
    st.fixed_dictionaries({"events": st.lists(events(), min_size=0, max_size=3)}, optional={"extra": scalars}),
    st.builds(lambda n: {"events": [{"version": "1.0.0"}] * n}, st.sampled_from([0, 100, 101])),
    anything,
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies)
def test_fast_validator_matches_contract(body):
    assert batch_problems(body) == contract_problems(body)


@given(st.lists(events(), min_size=1, max_size=3))
@settings(max_examples=200, deadline=None)
def test_valid_events_are_accepted_by_both(batch):
    verdicts = batch_problems({"events": batch}), contract_problems({"events": batch})
    assert (verdicts[0] == {}) == (verdicts[1] == {})


# The compiled path (ingest/events/compiled.py) against the full one: json, this validator, event_row.
NOW = datetime(2026, 11, 12, 21, 30, tzinfo=UTC)
RECEIVED = 1_700_000_000
RETENTION_DAYS = 90


def full_path_rows(raw: bytes) -> list[tuple[Any, ...]] | None:
    """The rows the full path stores for a body, or None when it refuses the body."""
    try:
        body = parse_json(raw)
    except MalformedJson:
        return None
    if batch_problems(body) or window_problems(body["events"], NOW, RETENTION_DAYS):
        return None
    return [event_row(event, RECEIVED) for event in body["events"]]


def compiled_rows(raw: bytes) -> list[tuple[Any, ...]] | None:
    return accepted_rows(raw, NOW, RETENTION_DAYS, RECEIVED)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies)
def test_compiled_path_accepts_only_what_the_full_path_stores(body):
    raw = json.dumps(body).encode()
    fast = compiled_rows(raw)
    assert fast is None or fast == full_path_rows(raw)


VALID_VALUES = {
    "version": st.sampled_from(["1.0.0", "2.10.3-beta.1", "0.0.1+build.7"]),
    "tool": st.sampled_from(["get_forecast", "get_alerts", "x"]),
    "status": st.sampled_from(["success", "error"]),
    "timestamp_hour": st.sampled_from(
        ["2026-11-12T20:00:00Z", "2026-11-12T20:15:00+02:00", "2026-11-12", "2026-08-15T00:00:00Z"]
    ),
    "analytics_level": st.sampled_from(["minimal", "standard", "detailed"]),
    "response_time_ms": st.one_of(st.floats(0, 3_600_000), st.integers(0, 3_600_000)),
    "service": st.sampled_from(["noaa", "openmeteo"]),
    "cache_hit": st.booleans(),
    "retry_count": st.integers(0, 1000),
    "country": st.sampled_from(["US", "ca", "Gb"]),
    "error_type": st.sampled_from(["NetworkError", "timeout.read"]),
    "session_id": st.sampled_from(["abc123def456", "a-b_c"]),
    "sequence_number": st.integers(0, 2**31 - 1),
    "parameters": st.dictionaries(
        st.sampled_from(["location_type", "days", "units", "email_kind"]),
        st.one_of(st.sampled_from(["coordinates", "metric"]), st.integers(-1000, 1000), st.booleans(), st.none()),
        max_size=3,
    ),
}


@st.composite
def valid_events(draw):  # type: ignore[no-untyped-def]
    event = {}
    for name, values in VALID_VALUES.items():
        if name in REQUIRED_FIELDS or draw(st.booleans()):
            event[name] = None if name not in REQUIRED_FIELDS and draw(st.integers(0, 9)) == 0 else draw(values)
    return event


@settings(max_examples=150, deadline=None)
@given(st.lists(valid_events(), min_size=1, max_size=100))
def test_compiled_path_stores_valid_batches_as_the_full_path_does(batch):
    raw = json.dumps({"events": batch}).encode()
    expected = full_path_rows(raw)
    assert expected is not None
    assert compiled_rows(raw) == expected


EVENT = (
    '"version":"1.0.0","tool":"t","status":"error","timestamp_hour":"2026-11-12T20:00:00Z","analytics_level":"minimal"'
)


@pytest.mark.parametrize(
    "raw",
    [
        '{"events":[{' + EVENT + ',"tool":"second"}]}',  # duplicate keys: the last one counts
        '{"events":[],"events":[{' + EVENT + "}]}",
        '{"events":[{' + EVENT + ',"parameters":{"days":1,"days":"seven"}}]}',
        '{"events":[{' + EVENT + ',"parameters":{"days":1,"days":1.5}}]}',
        '{"events":[{' + EVENT + ',"retry_count":1.0}]}',
        '{"events":[{' + EVENT + ',"response_time_ms":150}]}',
        '{"events":[{' + EVENT + ',"response_time_ms":1e400}]}',
        '{"events":[{' + EVENT + ',"response_time_ms":NaN}]}',
        '{"events":[{' + EVENT + ',"sequence_number":99999999999999999999999}]}',
        '{"events":[{' + EVENT + ',"version":"1.0.0\\n"}]}',
        '{"events":[{' + EVENT + ',"session_id":"\\ud800"}]}',
        '{"events":[{' + EVENT + ',"country":"uk"}]}',
        '{"events":[{' + EVENT + ',"country":"us","cache_hit":1}]}',
        '{"events":[{' + EVENT + ',"service":null,"parameters":{}}]}',
        '{"events":[{' + EVENT + '}],"extra":1}',
        '\ufeff{"events":[{' + EVENT + "}]}",
    ],
)
def test_compiled_path_corners(raw: str) -> None:
    data = raw.encode()
    fast = compiled_rows(data)
    assert fast is None or fast == full_path_rows(data)
