"""JSON as clients send it: MalformedJson for anything json.loads would choke on, and optionally strict JSON."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import msgspec

from weather_metrics.core.errors import ServiceError


class MalformedJson(ServiceError, ValueError):
    """The body is not JSON; the message says why."""


class NotText(MalformedJson):
    """Valid JSON holding a string that is not text (a lone surrogate such as "\\ud800"): no database stores it."""


# The fast decoder. What it accepts, json.loads accepts as the same value, strict or not: it
# refuses NaN, Infinity, numbers past a float's range, lone surrogates and byte order marks,
# which json.loads (or strict mode) judges; integers of any size stay integers (orjson would
# make floats of those past 64 bits). tests/test_strictjson.py holds it to that.
_DECODE = msgspec.json.decode

# Only an escape can put a surrogate in a string: bodies without one skip the check.
_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text[:20]} is too large for a number")
    return value


def parse_json(raw: bytes, strict: bool = False) -> Any:
    """The JSON value of `raw`; MalformedJson for anything json.loads would choke on.

    `strict` also refuses NaN and Infinity, which json.loads accepts but JSON does not,
    numbers such as 1e400 that would become Infinity, and strings that are not text (NotText).
    """
    try:
        return _DECODE(raw)
    except Exception:  # noqa: BLE001 - whatever msgspec refuses, json decides (and explains)
        pass
    try:
        if not strict:
            return json.loads(raw)
        value = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedJson(f"Malformed JSON: {exc}") from None
    except RecursionError:
        raise MalformedJson("Malformed JSON: nested too deeply") from None
    if _ESCAPED_SURROGATE.search(raw):
        try:
            json.dumps(value, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise NotText(
                "The body holds a string that is not valid Unicode (a lone surrogate such as \\ud800)"
            ) from None
    return value
