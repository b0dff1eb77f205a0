"""The privacy filter on `parameters`: categorical values only, the same verdict from both validators and over HTTP.

The rule is stated here on its own (docs/telemetry.md, "The privacy rule"), so these tests check the code against
the documented rule rather than against itself.
"""

from __future__ import annotations

import json
import string
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import make_event
from weather_metrics.ingest.events.schemas import contract_problems
from weather_metrics.ingest.events.validation import batch_problems
from weather_metrics.store.db import database

BAD_KEY = "Key must be a lowercase snake_case name (a-z and '_', starting with a letter, 1-64 characters)"
PII_KEY = "Looks like personal data (the key names location, contact or identity data); never send PII"
BAD_INTEGER = (
    "Must be a small integer (-1000 to 1000, no decimal point); measurements and long numbers may hold personal data"
)
BAD_TOKEN = (
    "Must be a lowercase word token (a-z and '_', 1-32 characters, starting with a letter); "
    "values with digits or punctuation may hold personal data"
)
NOT_FLAT = "Must be a boolean, null, small integer or word token (no objects or arrays)"

# What an MCP weather server sends: each must be stored.
ORDINARY = {
    "days": 7,
    "hours": 48,
    "units": "metric",
    "forecast_type": "hourly",
    "location_type": "coordinates",
    "include_alerts": True,
}

LOWER = string.ascii_lowercase
CATEGORY_WORDS = ["type", "kind", "format", "source", "mode"]
# Words of keys that name nothing personal, and some that name location, contact or identity data.
PLAIN_WORDS = ["include", "forecast", "alerts", "units", "days", "hours", "raw", "default", "preferred", "max"]
PII_WORDS = """lat latitude lon lng longitude latlong gps geo geohash loc location address street zip postcode
    city email mail phone tel ip hostname name username surname ssn birthday""".split()


def is_word_token(text: str) -> bool:
    """The documented value rule for strings."""
    return 1 <= len(text) <= 32 and text[0] in LOWER and all(c in LOWER + "_" for c in text)


def problem(key: str, value: Any) -> str | None:
    """The message both validators give one parameter, or None when both accept it."""
    body = {"events": [make_event(analytics_level="detailed", parameters={key: value})]}
    fast = batch_problems(body)
    assert fast == contract_problems(body)
    assert set(fast) <= {f"events[0].parameters.{key}"}
    return fast.get(f"events[0].parameters.{key}")


def stored_parameters(client: FlaskClient) -> list[str]:
    with client.application.app_context():
        return [row[0] for row in database.execute_sql("SELECT parameters FROM events").fetchall()]


# --- over HTTP --------------------------------------------------------------------------


def test_ordinary_parameters_are_accepted_and_stored(client: FlaskClient) -> None:
    event = make_event(analytics_level="detailed", session_id="abc123def456", sequence_number=1, parameters=ORDINARY)
    response = client.post("/v1/events", json={"events": [event]})
    assert response.status_code == 200, response.get_json()
    assert [json.loads(p) for p in stored_parameters(client)] == [ORDINARY]


# Each of these was once stored, though it holds a coordinate, an address, a phone number,
# an IP address, a name or a social security number, or its key says it does.
BYPASSES = [
    ("q", "40.7128N", BAD_TOKEN),
    ("q", "40.7128_-74.0060", BAD_TOKEN),
    ("q", "40:42:46N", BAD_TOKEN),
    ("q", 40712800, BAD_INTEGER),
    ("q", "dr5regw3p", BAD_TOKEN),
    ("latlong", True, PII_KEY),
    ("gps", "on", PII_KEY),
    ("geo", "home", PII_KEY),
    ("tel", "mobile", PII_KEY),
    ("mail", "work", PII_KEY),
    ("q", "2130706433", BAD_TOKEN),
    ("q", 2130706433, BAD_INTEGER),
    ("q", "0x7f000001", BAD_TOKEN),
    ("q", "ip-10-0-0-1", BAD_TOKEN),
    ("q", "555-123-4567", BAD_TOKEN),
    ("q", "123-45-6789", BAD_TOKEN),
    ("q", "John.Smith", BAD_TOKEN),
    ("q", "123_Main_St", BAD_TOKEN),
]


@pytest.mark.parametrize(("key", "value", "message"), BYPASSES, ids=[f"{k}={v!r}" for k, v, _ in BYPASSES])
def test_personal_data_in_any_spelling_is_refused_and_not_stored(
    client: FlaskClient, key: str, value: Any, message: str
) -> None:
    event = make_event(analytics_level="detailed", parameters={"units": "metric", key: value})
    response = client.post("/v1/events", json={"events": [event]})
    assert response.status_code == 400
    assert response.get_json()["details"] == [f"events[0].parameters.{key}: {message}"]
    assert stored_parameters(client) == []


# --- one rule, one message ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("q", "40.7128,-74.0060", BAD_TOKEN),
        ("q", "a@b.com", BAD_TOKEN),
        ("q", "192.168.1.10", BAD_TOKEN),
        ("q", "::1", BAD_TOKEN),
        ("q", "John Smith", BAD_TOKEN),
        ("q", "Metric", BAD_TOKEN),
        ("q", "", BAD_TOKEN),
        ("q", "_hidden", BAD_TOKEN),
        ("q", "x" * 33, BAD_TOKEN),
        ("q", 40.7128, BAD_INTEGER),
        ("q", 7.0, BAD_INTEGER),
        ("q", float("nan"), BAD_INTEGER),
        ("q", 1001, BAD_INTEGER),
        ("q", -1001, BAD_INTEGER),
        ("q", {"lat": 1}, NOT_FLAT),
        ("q", [40, -74], NOT_FLAT),
        ("latitude", 1, PII_KEY),
        ("user_email", "work", PII_KEY),
        ("useremail", "work", PII_KEY),
        ("client_ip", None, PII_KEY),
        ("home_address", "x", PII_KEY),
        ("first_name", "x", PII_KEY),
        ("location", "paris", PII_KEY),
        ("userEmail", "work", BAD_KEY),
        ("days2", 7, BAD_KEY),
        ("_private", 1, BAD_KEY),
        ("has-dash", 1, BAD_KEY),
        ("k" * 65, 1, BAD_KEY),
    ],
)
def test_each_rule_has_its_message(key: str, value: Any, message: str) -> None:
    assert problem(key, value) == message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        *ORDINARY.items(),
        ("days", -1000),
        ("hours", 1000),
        ("tz", None),
        ("units", "x" * 32),
        ("address_format", "short"),
        ("email_kind", "work"),
        ("k" * 64, "v"),
    ],
)
def test_categorical_values_are_accepted(key: str, value: Any) -> None:
    assert problem(key, value) is None


def test_at_most_20_parameters() -> None:
    twenty = {f"option_{letter}": True for letter in LOWER[:20]}
    accepted = {"events": [make_event(analytics_level="detailed", parameters=twenty)]}
    assert batch_problems(accepted) == contract_problems(accepted) == {}
    refused = {"events": [make_event(analytics_level="detailed", parameters={**twenty, "option_u": True})]}
    assert (
        batch_problems(refused) == contract_problems(refused) == {"events[0].parameters": "Must have at most 20 keys"}
    )


def test_each_refused_parameter_is_named_and_the_others_are_not() -> None:
    parameters = {**ORDINARY, "lat": 40, "q": "a@b.com", "n": 40712800}
    body = {"events": [make_event(analytics_level="detailed", parameters=parameters)]}
    assert (
        batch_problems(body)
        == contract_problems(body)
        == {
            "events[0].parameters.lat": PII_KEY,
            "events[0].parameters.q": BAD_TOKEN,
            "events[0].parameters.n": BAD_INTEGER,
        }
    )


def test_equal_values_of_other_types_get_their_own_verdict() -> None:
    """7 and 7.0 (and 1 and True) are equal in Python; only the integer and the boolean may pass."""
    assert problem("days", 7) is None
    assert problem("days", 7.0) == BAD_INTEGER
    assert problem("hours", 8.0) == BAD_INTEGER
    assert problem("hours", 8) is None
    assert problem("flag", True) is None
    assert problem("flag", 1) is None
    assert problem("flag", 1.0) == BAD_INTEGER


def test_long_keys_and_values_do_not_grow_the_cache() -> None:
    from weather_metrics.ingest.events import parameters

    before = parameters._scalar_problem.cache_info().currsize
    assert problem("q", "x" * 90_000) == BAD_TOKEN
    assert problem("k" * 90_000, 1) == BAD_KEY
    assert problem("q", 10**400) == BAD_INTEGER
    assert parameters._scalar_problem.cache_info().currsize == before


# --- properties of the documented rule ----------------------------------------------------

tokens = st.from_regex(r"[a-z][a-z_]{0,31}", fullmatch=True)
stray_characters = st.one_of(
    st.sampled_from(string.digits + string.ascii_uppercase + string.punctuation.replace("_", "") + " \n\t"),
    st.characters(),
).filter(lambda c: c not in LOWER + "_")


def with_stray(text: str, stray: str, at: int) -> str:
    at = min(at, len(text))
    return text[:at] + stray + text[at:]


strings_outside = st.one_of(
    st.builds(with_stray, tokens, stray_characters, st.integers(0, 32)),
    st.from_regex(r"[a-z][a-z_]{32,80}", fullmatch=True),
    tokens.map(lambda t: "_" + t),
    st.just(""),
)
integers_outside = st.integers(max_value=-1001) | st.integers(min_value=1001)
plain_keys = st.lists(st.sampled_from(PLAIN_WORDS), min_size=1, max_size=4).map("_".join)


@st.composite
def pii_keys(draw: st.DrawFn) -> str:
    """A key with a word naming personal data, anywhere but before a category word."""
    words = draw(st.lists(st.sampled_from(PLAIN_WORDS), max_size=3))
    words.insert(draw(st.integers(0, len(words))), draw(st.sampled_from(PII_WORDS)))
    return "_".join(words)


keys_outside = st.one_of(
    st.builds(with_stray, plain_keys, stray_characters, st.integers(0, 64)),
    st.from_regex(r"[a-z][a-z_]{64,90}", fullmatch=True),
)
values_inside = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), tokens)
# "<pii word>_type" names a kind of data, not the data.
keys_inside = plain_keys | st.builds("{}_{}".format, st.sampled_from(PII_WORDS), st.sampled_from(CATEGORY_WORDS))


@settings(max_examples=300, deadline=None)
@given(st.one_of(strings_outside.map(lambda s: (s, BAD_TOKEN)), integers_outside.map(lambda n: (n, BAD_INTEGER))))
def test_values_outside_the_rule_are_refused(case: tuple[Any, str]) -> None:
    value, message = case
    assert problem("q", value) == message


@settings(max_examples=150, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_every_float_is_refused(value: float) -> None:
    assert problem("q", value) == BAD_INTEGER


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40) | tokens, st.integers())
def test_strings_and_integers_pass_exactly_when_the_rule_says(text: str, number: int) -> None:
    assert (problem("q", text) is None) == is_word_token(text)
    assert (problem("n", number) is None) == (-1000 <= number <= 1000)


@settings(max_examples=200, deadline=None)
@given(pii_keys(), values_inside)
def test_keys_naming_personal_data_are_refused(key: str, value: Any) -> None:
    assert problem(key, value) == PII_KEY


@settings(max_examples=200, deadline=None)
@given(keys_outside, values_inside)
def test_keys_outside_the_rule_are_refused(key: str, value: Any) -> None:
    assert problem(key, value) == BAD_KEY


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(keys_inside, values_inside, max_size=20))
def test_parameters_inside_the_rule_are_accepted(parameters: dict[str, Any]) -> None:
    body = {"events": [make_event(analytics_level="detailed", parameters=parameters)]}
    assert batch_problems(body) == {}
    assert contract_problems(body) == {}
