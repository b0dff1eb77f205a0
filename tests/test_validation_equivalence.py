"""The hot-path validator and the marshmallow contract agree on every batch."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from weather_metrics.ingest.events.schemas import contract_problems
from weather_metrics.ingest.events.validation import EVENT_FIELDS, batch_problems

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
        st.dictionaries(st.from_regex(r"[a-z]{1,6}", fullmatch=True), st.integers(), min_size=21, max_size=22),
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
