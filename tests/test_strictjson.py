"""parse_json decodes fast, yet answers exactly as json.loads (and strict mode) did: same values, same refusals."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from weather_metrics.core.strictjson import MalformedJson, NotText, parse_json

numbers = st.one_of(
    st.integers(),  # past 64 bits too: they must stay integers
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["1e400", "-1e400", "1e-400", "-0", "-0.0", "1E5", "0.1", "123456789012345678901234567890.5"]),
)
texts = st.one_of(st.text(), st.sampled_from(['"\\ud800"', '"\\udc00x"', '"\\ud83d\\ude00"', '"a\\u0000b"']))


@st.composite
def json_texts(draw: Any, depth: int = 0) -> str:
    """JSON text with the corners decoders differ on: duplicate keys, huge numbers, escapes, NaN, spacing."""
    kind = draw(st.integers(0, 6 if depth < 3 else 3))
    if kind == 0:
        value = draw(numbers)
        return value if isinstance(value, str) else json.dumps(value)
    if kind == 1:
        text = draw(texts)
        return text if text.startswith('"') else json.dumps(text, ensure_ascii=draw(st.booleans()))
    if kind == 2:
        return draw(st.sampled_from(["true", "false", "null", "NaN", "Infinity", "-Infinity"]))
    if kind == 3:
        return " " + draw(st.sampled_from(["{}", "[]", "1", '"x"'])) + "\n"
    if kind == 4:
        return "[" + ",".join(draw(st.lists(json_texts(depth + 1), max_size=3))) + "]"
    keys = draw(st.lists(st.sampled_from(["a", "b", "events", "é"]), max_size=4))  # repeats: duplicate keys
    return "{" + ",".join(f"{json.dumps(k)}:{draw(json_texts(depth + 1))}" for k in keys) + "}"


def reference(raw: bytes, strict: bool) -> Any:
    """What parse_json answered when it was json.loads alone."""

    def refuse(name: str) -> Any:
        raise ValueError(name)

    def finite(text: str) -> float:
        value = float(text)
        if math.isinf(value):
            raise ValueError(text)
        return value

    value = json.loads(raw, parse_constant=refuse, parse_float=finite) if strict else json.loads(raw)
    if strict and re.search(rb"\\u[dD][89a-fA-F]", raw):
        json.dumps(value, ensure_ascii=False).encode()  # UnicodeEncodeError: not text
    return value


def outcome(call: Any) -> Any:
    try:
        value = call()
    except (ValueError, UnicodeError):
        return "refused"
    # NaN != NaN, and 0 == 0.0 == False: compare the text of the value, types included.
    return repr(value)


@settings(max_examples=500, deadline=None)
@given(json_texts(), st.booleans(), st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]))
def test_parse_json_answers_as_json_loads(text: str, strict: bool, encoding: str) -> None:
    try:
        raw = text.encode(encoding)
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogatepass")  # a raw surrogate: not UTF-8, json decodes it anyway
    assert outcome(lambda: parse_json(raw, strict)) == outcome(lambda: reference(raw, strict))


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b'{"a": 1, "a": 2}', {"a": 2}),
        (b"18446744073709551616", 18446744073709551616),
        (b"[-0, -0.0, 1e-400]", [0, -0.0, 0.0]),
        (b"NaN", math.nan),
        (b"1e400", math.inf),
        (b'"\\ud800"', "\ud800"),
        (b'\xef\xbb\xbf{"a": 1}', {"a": 1}),
    ],
)
def test_lenient_values(raw: bytes, value: Any) -> None:
    assert repr(parse_json(raw)) == repr(value)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"NaN", MalformedJson),
        (b"[1e400]", MalformedJson),
        (b'{"a": "\\ud800"}', NotText),
        (b"[" * 100_000, MalformedJson),
        (b"{", MalformedJson),
        (b"\xff", MalformedJson),
    ],
)
def test_strict_refusals(raw: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_json(raw, strict=True)
