"""The compiled hot path of POST /v1/events: decode, check and turn a valid body into rows in one go.

msgspec decodes the body straight into typed records, checking its shape, types, ranges
and choices in C; the checks left to Python run once per distinct value in the batch
(versions, tools, hours, countries...), not once per event. A body this path accepts is
one validation.py accepts too, with the same rows; any other body returns None and takes
the full path (json and validation.py), which says what is wrong.
tests/test_validation_equivalence.py holds the two paths to that.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from functools import lru_cache
from operator import attrgetter
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from weather_metrics.core.histogram import latency_bucket
from weather_metrics.core.times import HOUR, parse_timestamp
from weather_metrics.ingest.events.parameters import MAX_PARAMETERS, parameter_problem
from weather_metrics.ingest.events.validation import (
    ERROR_TYPE,
    IDENTIFIER,
    MAX_EVENTS,
    MAX_FUTURE,
    MAX_RESPONSE_TIME_MS,
    MAX_RETRY_COUNT,
    MAX_SEQUENCE_NUMBER,
    SEMVER,
    SESSION_ID,
    normalize_country,
)

Row = tuple[Any, ...]

_TIME_RANGE = Meta(ge=0, le=MAX_RESPONSE_TIME_MS)
ResponseTime = Annotated[int, _TIME_RANGE] | Annotated[float, _TIME_RANGE]
Parameters = Annotated[dict[str, bool | int | str | None], Meta(max_length=MAX_PARAMETERS)]


class _Event(Struct, forbid_unknown_fields=True, gc=False):
    """One event as validation.py accepts it; strings are matched per distinct value afterwards."""

    version: str
    tool: str
    status: Literal["success", "error"]
    timestamp_hour: str
    analytics_level: Literal["minimal", "standard", "detailed"]
    # int or float as sent: the row keeps what json would have given
    response_time_ms: ResponseTime | None = None
    service: str | None = None
    cache_hit: bool | None = None
    retry_count: Annotated[int, Meta(ge=0, le=MAX_RETRY_COUNT)] | None = None
    country: str | None = None
    error_type: str | None = None
    session_id: str | None = None
    sequence_number: Annotated[int, Meta(ge=0, le=MAX_SEQUENCE_NUMBER)] | None = None
    parameters: Parameters | None = None


class _Batch(Struct, forbid_unknown_fields=True, gc=False):
    events: Annotated[list[_Event], Meta(min_length=1, max_length=MAX_EVENTS)]


_DECODER = msgspec.json.Decoder(_Batch)
_ENCODER = msgspec.json.Encoder(order="sorted")
_PATTERNS: tuple[tuple[attrgetter[Any], re.Pattern[str]], ...] = (
    (attrgetter("version"), SEMVER),
    (attrgetter("tool"), IDENTIFIER),
    (attrgetter("service"), IDENTIFIER),
    (attrgetter("error_type"), ERROR_TYPE),
    (attrgetter("session_id"), SESSION_ID),
)
_TIMESTAMP = attrgetter("timestamp_hour")
_COUNTRY = attrgetter("country")


def accepted_rows(raw: bytes, now: datetime, retention_days: int, received_at: int) -> list[Row] | None:
    """The events-table rows of a valid body (as store/events.py's event_row builds them), or None."""
    try:
        events = _DECODER.decode(raw).events
    except Exception:  # noqa: BLE001 - malformed, invalid, too deep, not UTF-8...: the full path says which
        return None
    for value_of, pattern in _PATTERNS:
        values = set(map(value_of, events))
        values.discard(None)
        if not all(pattern.fullmatch(value) for value in values):
            return None
    hours = _hours(set(map(_TIMESTAMP, events)), now, retention_days)
    countries = {code: normalize_country(code) for code in set(map(_COUNTRY, events)) if code is not None}
    if hours is None or None in countries.values() or not _parameters_fine(events):
        return None
    return [
        (
            received_at,
            hours[e.timestamp_hour],
            e.version,
            e.tool,
            1 if e.status == "error" else 0,
            e.analytics_level,
            e.response_time_ms,
            None if e.response_time_ms is None else latency_bucket(e.response_time_ms),
            e.service,
            None if e.cache_hit is None else int(e.cache_hit),
            e.retry_count,
            None if e.country is None else countries[e.country],
            e.error_type,
            e.session_id,
            e.sequence_number,
            None if e.parameters is None else _ENCODER.encode(e.parameters).decode(),
        )
        for e in events
    ]


def _hours(stamps: set[str], now: datetime, retention_days: int) -> dict[str, int] | None:
    """The hour of each timestamp; None when one is not a date-time or falls outside the kept window."""
    latest = now + MAX_FUTURE
    earliest = (now - timedelta(days=retention_days)).replace(minute=0, second=0, microsecond=0)
    hours = {}
    for stamp in stamps:
        parsed = _hour_of(stamp) if len(stamp) <= _LONGEST_STAMP else None  # a long one is not kept in the cache
        if parsed is None or not earliest <= parsed[0] <= latest:
            return None
        hours[stamp] = parsed[1]
    return hours


_LONGEST_STAMP = 40  # characters of the longest timestamp remembered (and accepted)


@lru_cache(maxsize=4096)  # a fleet's batches share their few hours; at most 4096 x 40 characters kept
def _hour_of(stamp: str) -> tuple[datetime, int] | None:
    """A timestamp's moment and the start of its hour (Unix seconds); None when it is not a date-time."""
    moment = parse_timestamp(stamp)
    return None if moment is None else (moment, int(moment.timestamp()) // HOUR * HOUR)


def _parameters_fine(events: list[_Event]) -> bool:
    """Whether every parameter passes the privacy filter; each distinct one is judged once."""
    # Typed: 1 and True are equal keys with different verdicts.
    distinct = {(key, value, type(value)) for e in events if e.parameters for key, value in e.parameters.items()}
    return not any(parameter_problem(key, value) for key, value, _ in distinct)
