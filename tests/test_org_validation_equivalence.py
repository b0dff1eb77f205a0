"""The hot-path validators of organization metrics and their marshmallow contract agree."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import Schema

from weather_metrics.core import vocabulary
from weather_metrics.ingest.org import validation as o
from weather_metrics.web.api.ingest_schemas import (
    COMPONENTS,
    NO_CONTROL_CHARACTERS,
    AgentExecutionSchema,
    ProductivityMetricSchema,
)

# The contract leaves the clock out, so the fast validator gets a window that admits every moment.
ALWAYS = (datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))
AGENT_SCHEMA = AgentExecutionSchema()
PRODUCTIVITY_SCHEMA = ProductivityMetricSchema()
FAST_VALIDATORS = {"agent": o.agent_problems, "productivity": o.productivity_problems}
CONTRACTS = {"agent": AGENT_SCHEMA, "productivity": PRODUCTIVITY_SCHEMA}


def contract_problems(schema: Schema, item: Any) -> dict[str, str]:
    """The schema's verdict as {field: message}; each field must get exactly one message."""
    out = {}
    for field, messages in schema.validate(item).items():
        assert isinstance(messages, list) and len(messages) == 1, (field, messages)
        out["_body" if field == "_schema" else field] = messages[0]
    return out


def verdicts(kind: str, item: Any) -> tuple[dict[str, str], dict[str, str]]:
    return FAST_VALIDATORS[kind](item, ALWAYS), contract_problems(CONTRACTS[kind], item)


# Values

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=True, allow_infinity=True),  # json.loads accepts NaN and Infinity
    st.text(max_size=20),
)
anything = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
not_a_string = anything.filter(lambda v: v is not None and not isinstance(v, str))
not_a_number = st.one_of(
    st.booleans(),
    st.sampled_from(["5", "", "1e3", math.nan, math.inf, -math.inf]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
CONTROL = [chr(c) for c in range(0x100) if re.fullmatch(f"[{o.CONTROL_CHARACTERS}]", chr(c))]
ALLOWED_TEXT = st.characters(exclude_characters="".join(CONTROL))


def text(low: int, high: int) -> st.SearchStrategy[str]:
    """Valid text: printable and tab/newline/CR characters, boundary lengths included."""
    return st.one_of(
        st.text(ALLOWED_TEXT, min_size=low, max_size=min(high, 30)),
        st.sampled_from(["é" * high, "x" * max(low, 1), "tab\there\r\n", "user@example.com"]),
    )


def bad_text(low: int, high: int) -> st.SearchStrategy[Any]:
    """Wrong type, outside the length, or holding a control character (alone or with a bad length)."""
    control = st.sampled_from(CONTROL)
    return st.one_of(
        not_a_string,
        st.just("y" * (high + 1)),
        st.just("") if low > 0 else st.nothing(),
        st.builds(lambda head, c, tail: head + c + tail, text(0, 10), control, text(0, 10)),
        st.builds(lambda c: c * (high + 1), control),
    )


metadata_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
valid_metadata = st.one_of(
    st.dictionaries(st.text(max_size=8), metadata_values, max_size=4),
    st.just({"k": "é" * ((o.MAX_METADATA_BYTES - 8) // 2)}),  # 4096 bytes of UTF-8 JSON: the limit
    st.just({"k": "x" * (o.MAX_METADATA_BYTES - 8)}),  # 4096 bytes of JSON: the limit
)
bad_metadata = st.one_of(
    anything.filter(lambda v: v is not None and not isinstance(v, dict)),
    st.just({"k": "x" * (o.MAX_METADATA_BYTES - 7)}),  # one character over
    st.just({"k": "é" * ((o.MAX_METADATA_BYTES - 7) // 2 + 1)}),  # under the limit in characters, over in bytes
    st.dictionaries(st.text(min_size=1, max_size=4), st.just("z" * 1500), min_size=3, max_size=4),
)

valid_timestamps = st.one_of(
    st.sampled_from(["2026-03-02T14:05:00Z", "2026-03-02T14:05:00.123456+02:00", "2026-03-02", "2026-03-02 14:05"]),
    st.datetimes(
        min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.sampled_from([None, UTC])
    ).map(datetime.isoformat),
)
bad_timestamps = st.one_of(
    not_a_string,
    st.sampled_from(
        [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-02-30",
            "02/03/2026",
            "2026-03-02T14:05:00Z" + " " * 30,  # longer than 40 characters
            "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
            "2026-03-02T25:00:00",
        ]
    ),
    st.text(max_size=45),
)


def numbers(low: float, high: float) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(int(low), int(high)), st.floats(low, high), st.sampled_from([low, high, int(low), int(high)])
    )


def bad_numbers(low: float, high: float) -> st.SearchStrategy[Any]:
    return st.one_of(
        not_a_number,
        st.sampled_from([low - 1, high + 1, low - 0.5, high + 0.5, -(10**30), 10**30, int(high) + 1]),
        st.floats(min_value=high, exclude_min=True, allow_infinity=False),
    )


# Each field: (valid values, invalid ones); `required` as on the hot path.
AGENT_FIELDS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "session_id": (text(1, o.MAX_SESSION_ID), bad_text(1, o.MAX_SESSION_ID)),
    "user_identifier": (text(1, o.MAX_IDENTIFIER), bad_text(1, o.MAX_IDENTIFIER)),
    "user_id": (text(1, o.MAX_IDENTIFIER), bad_text(1, o.MAX_IDENTIFIER)),
    "agent_name": (text(1, o.MAX_AGENT_NAME), bad_text(1, o.MAX_AGENT_NAME)),
    "command": (text(1, o.MAX_COMMAND), bad_text(1, o.MAX_COMMAND)),
    "execution_time_ms": (numbers(0, o.MAX_EXECUTION_MS), bad_numbers(0, o.MAX_EXECUTION_MS)),
    "success": (st.booleans(), st.one_of(st.sampled_from([0, 1, 0.0, "true", "false", ""]), not_a_string)),
    "error_details": (text(0, o.MAX_ERROR_DETAILS), bad_text(0, o.MAX_ERROR_DETAILS)),
    "metadata": (valid_metadata, bad_metadata),
    "timestamp": (valid_timestamps, bad_timestamps),
}
AGENT_REQUIRED = {"agent_name", "command", "execution_time_ms", "success", "timestamp"}
PRODUCTIVITY_FIELDS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "timestamp": (valid_timestamps, bad_timestamps),
    "type": (
        st.one_of(
            st.sampled_from(vocabulary.STANDARD_PRODUCTIVITY_TYPES), st.from_regex(o.METRIC_TYPE, fullmatch=True)
        ),
        st.one_of(
            not_a_string,
            st.sampled_from(["", "Commits", "1commits", "lines added", "commits\n", "x" * 65, "é"]),
            st.text(max_size=70),
        ),
    ),
    "value": (numbers(-o.MAX_ABS_VALUE, o.MAX_ABS_VALUE), bad_numbers(-o.MAX_ABS_VALUE, o.MAX_ABS_VALUE)),
    "user_id": (text(1, o.MAX_IDENTIFIER), bad_text(1, o.MAX_IDENTIFIER)),
    "team_id": (text(1, o.MAX_IDENTIFIER), bad_text(1, o.MAX_IDENTIFIER)),
    "metadata": (valid_metadata, bad_metadata),
}
PRODUCTIVITY_REQUIRED = {"timestamp", "type", "value"}
MUTATIONS = ("invalid", "invalid", "invalid", "missing", "null", "unknown", "anything")


@st.composite
def valid_items(draw: Any, spec: dict[str, Any], required: set[str]) -> dict[str, Any]:
    """Every required field and some optional ones, all with valid values."""
    return {name: draw(valid) for name, (valid, _) in spec.items() if name in required or draw(st.booleans())}


@st.composite
def items(draw: Any, spec: dict[str, Any], required: set[str]) -> Any:
    """A valid item with zero to four mutations, or now and then something that is not an object."""
    if draw(st.integers(0, 24)) == 0:
        return draw(anything)
    item = draw(valid_items(spec, required))
    for _ in range(draw(st.integers(0, 4))):
        mutation, name = draw(st.sampled_from(MUTATIONS)), draw(st.sampled_from(sorted(spec)))
        if mutation == "invalid":
            item[name] = draw(spec[name][1])
        elif mutation == "missing":
            item.pop(name, None)
        elif mutation == "null":
            item[name] = None
        elif mutation == "unknown":
            item[draw(st.text(max_size=12).filter(lambda key: key not in spec))] = draw(anything)
        else:
            item[name] = draw(anything)
    return item


agent_items = items(AGENT_FIELDS, AGENT_REQUIRED)
productivity_items = items(PRODUCTIVITY_FIELDS, PRODUCTIVITY_REQUIRED)
EQUIVALENCE = settings(max_examples=700, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@EQUIVALENCE
@given(agent_items)
def test_agent_validator_matches_contract(item):
    fast, contract = verdicts("agent", item)
    assert fast == contract


@EQUIVALENCE
@given(productivity_items)
def test_productivity_validator_matches_contract(item):
    fast, contract = verdicts("productivity", item)
    assert fast == contract


@settings(max_examples=150, deadline=None)
@given(valid_items(AGENT_FIELDS, AGENT_REQUIRED), valid_items(PRODUCTIVITY_FIELDS, PRODUCTIVITY_REQUIRED))
def test_valid_items_are_accepted_by_both(agent, metric):
    assert verdicts("agent", agent) == ({}, {})
    assert verdicts("productivity", metric) == ({}, {})


# One example per rule, with its exact message.

AGENT = {
    "agent_name": "claude",
    "command": "fix the flaky test",
    "execution_time_ms": 1250,
    "success": True,
    "timestamp": "2026-03-02T14:05:00Z",
}
METRIC = {"timestamp": "2026-03-02T14:05:00Z", "type": "commits", "value": 3}


@pytest.mark.parametrize(
    ("kind", "change", "field", "message"),
    [
        ("agent", {"agent_name": None}, "agent_name", "Missing data for required field."),
        ("agent", {"success": None}, "success", "Missing data for required field."),
        ("agent", {"colour": "red"}, "colour", "Unknown field."),
        ("agent", {"agent_name": 7}, "agent_name", "Must be a string."),
        ("agent", {"agent_name": ""}, "agent_name", "Length must be between 1 and 128."),
        ("agent", {"command": "x" * 2049}, "command", "Length must be between 1 and 2048."),
        ("agent", {"session_id": "s" * 129}, "session_id", "Length must be between 1 and 128."),
        ("agent", {"user_identifier": "u" * 257}, "user_identifier", "Length must be between 1 and 256."),
        ("agent", {"error_details": "e" * 4097}, "error_details", "Length must be between 0 and 4096."),
        ("agent", {"command": "rm\x00-rf"}, "command", "Must not contain control characters."),
        ("agent", {"user_id": "bob\x7f"}, "user_id", "Must not contain control characters."),
        ("agent", {"execution_time_ms": "1250"}, "execution_time_ms", "Must be a finite number."),
        ("agent", {"execution_time_ms": True}, "execution_time_ms", "Must be a finite number."),
        ("agent", {"execution_time_ms": math.inf}, "execution_time_ms", "Must be a finite number."),
        ("agent", {"execution_time_ms": -1}, "execution_time_ms", "Must be between 0 and 86400000."),
        ("agent", {"execution_time_ms": 86_400_001}, "execution_time_ms", "Must be between 0 and 86400000."),
        ("agent", {"success": "true"}, "success", "Must be a boolean."),
        ("agent", {"success": 1}, "success", "Must be a boolean."),
        ("agent", {"metadata": ["a"]}, "metadata", "Must be an object."),
        ("agent", {"metadata": {"k": "x" * 4090}}, "metadata", "Must be at most 4096 bytes of JSON."),
        ("agent", {"timestamp": 1767225600}, "timestamp", "Must be an ISO 8601 date-time."),
        ("agent", {"timestamp": "2026-02-30T00:00:00Z"}, "timestamp", "Must be an ISO 8601 date-time."),
        ("productivity", {"type": None}, "type", "Missing data for required field."),
        ("productivity", {"type": "Commits"}, "type", "Must match [a-z][a-z0-9_.-]{0,63}."),
        ("productivity", {"type": "c" * 65}, "type", "Must match [a-z][a-z0-9_.-]{0,63}."),
        ("productivity", {"type": 3}, "type", "Must match [a-z][a-z0-9_.-]{0,63}."),
        ("productivity", {"value": False}, "value", "Must be a finite number."),
        ("productivity", {"value": 10**13}, "value", "Must be between -1000000000000 and 1000000000000."),
        ("productivity", {"team_id": ""}, "team_id", "Length must be between 1 and 256."),
        ("productivity", {"metadata": "notes"}, "metadata", "Must be an object."),
        ("productivity", {"timestamp": "soon"}, "timestamp", "Must be an ISO 8601 date-time."),
    ],
)
def test_each_rule_has_its_message_in_both(kind, change, field, message):
    item = {**(AGENT if kind == "agent" else METRIC), **change}
    assert verdicts(kind, item) == ({field: message}, {field: message})


@pytest.mark.parametrize("kind", ["agent", "productivity"])
def test_a_missing_field_and_a_body_that_is_not_an_object(kind):
    item = dict(AGENT if kind == "agent" else METRIC)
    del item["timestamp"]
    assert verdicts(kind, item) == ({"timestamp": o.REQUIRED}, {"timestamp": o.REQUIRED})
    assert verdicts(kind, ["not", "an", "object"]) == ({"_body": o.NOT_OBJECT}, {"_body": o.NOT_OBJECT})


def test_optional_fields_accept_null_and_limits_are_inclusive():
    agent = {**AGENT, "session_id": None, "metadata": None, "error_details": "", "execution_time_ms": 86_400_000}
    metric = {**METRIC, "user_id": None, "team_id": None, "value": -1e12, "type": "a" + "b" * 63}
    assert verdicts("agent", agent) == ({}, {})
    assert verdicts("productivity", metric) == ({}, {})


def test_text_allows_tab_newline_and_carriage_return():
    assert verdicts("agent", {**AGENT, "command": "line one\n\tline two\r\n"}) == ({}, {})


def test_the_documented_pattern_is_the_control_character_rule():
    documented = re.compile(NO_CONTROL_CHARACTERS)
    for code in range(0x3000):
        character = chr(code)
        refused = "command" in o.agent_problems({**AGENT, "command": character}, ALWAYS)
        assert (documented.search(character) is None) == refused, hex(code)


def test_every_field_is_documented():
    for name, schema in COMPONENTS.items():
        undocumented = [f for f, field in schema().fields.items() if not field.metadata.get("description")]
        assert undocumented == [], name


# The window: the only rule that depends on the clock, so the fast validator alone has it.

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
WINDOW = o.accepted_window(NOW, retention_days=90, skew_seconds=300)


@pytest.mark.parametrize("kind", ["agent", "productivity"])
def test_the_window_refuses_the_future_and_the_expired(kind):
    problems = FAST_VALIDATORS[kind]
    item = AGENT if kind == "agent" else METRIC

    def at(moment: datetime) -> dict[str, str]:
        return problems({**item, "timestamp": moment.isoformat()}, WINDOW)

    assert at(NOW + timedelta(minutes=10)) == {
        "timestamp": "Must not be in the future (beyond the allowed clock skew)."
    }
    assert at(NOW - timedelta(days=91)) == {"timestamp": "Older than the retention period."}
    assert at(NOW + timedelta(minutes=4)) == {}
    assert at(NOW - timedelta(days=89)) == {}
    # The contract documents the format only: the same future moment passes it.
    assert contract_problems(CONTRACTS[kind], {**item, "timestamp": (NOW + timedelta(minutes=10)).isoformat()}) == {}


def test_prefix_names_the_item_in_a_batch():
    problems = o.agent_problems({**AGENT, "success": "yes"}, ALWAYS, prefix="items[3].")
    assert problems == {"items[3].success": o.NOT_BOOLEAN}
    assert o.productivity_problems(42, ALWAYS, prefix="items[0].") == {"items[0]": o.NOT_OBJECT}
