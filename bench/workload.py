"""Realistic tool-call events for the benchmarks: JSON-ready dicts, or rows for direct writes."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from weather_metrics.core.histogram import latency_bucket
from weather_metrics.store.batches import PendingBatch, write_batches
from weather_metrics.store.events import EVENT_COLUMNS, EVENTS
from weather_metrics.store.rowkind import RowKind

HOUR = 3600

TOOLS = (
    ("get_forecast", 30),
    ("get_current_conditions", 24),
    ("get_alerts", 12),
    ("search_location", 10),
    ("get_historical_weather", 6),
    ("get_air_quality", 5),
    ("get_marine_conditions", 4),
    ("get_river_conditions", 3),
    ("get_wildfire_info", 3),
    ("check_service_status", 3),
)
# Fifteen releases; newer ones carry more of the traffic.
VERSIONS = tuple((f"1.{minor}.{patch}", 1 + minor * 2 + patch) for minor in range(5) for patch in range(3))
COUNTRIES = tuple(
    (code, round(1000 / (rank + 1) ** 1.1) + 1)
    for rank, code in enumerate(
        "US CA GB DE FR AU NL SE IN JP BR ES IT PL CH NO DK FI IE NZ BE AT MX KR SG "
        "CZ PT ZA AR IL TW HU RO GR CL CO UA TR PH ID".split()
    )
)
SERVICES = (("noaa", 45), ("openmeteo", 40), ("nominatim", 10), ("nifc", 5))
ERROR_TYPES = (
    ("NetworkError", 35),
    ("TimeoutError", 25),
    ("RateLimitError", 15),
    ("ServiceUnavailable", 12),
    ("ValidationError", 8),
    ("ParseError", 5),
)
LEVELS = (("detailed", 60), ("standard", 35), ("minimal", 5))
ERROR_RATE = 0.02
CACHE_HIT_RATE = 0.7
PARAMETERS = {"location_type": "coordinates"}
PARAMETERS_JSON = '{"location_type":"coordinates"}'
# Lognormal response time: median ~120 ms, p99 ~ 1 s.
RESPONSE_MU, RESPONSE_SIGMA = math.log(120), 0.9

ROW_COLUMNS = tuple(
    """received_at timestamp_hour version tool is_error analytics_level response_time_ms latency_bucket service
    cache_hit retry_count country error_type session_id sequence_number parameters""".split()
)
if EVENT_COLUMNS != ROW_COLUMNS:
    raise RuntimeError("weather_metrics.store.events.EVENT_COLUMNS changed; update bench/workload.py event_rows()")


# response_time_ms .. country, and session_id .. parameters, of events that lack them
_NOT_MEASURED = (None,) * 6
_NO_SESSION = (None,) * 3


@dataclass(frozen=True)
class Install:
    """One MCP server installation: its session, release and country stay the same."""

    session_id: str
    version: str
    country: str


def _pick(rng: random.Random, table: tuple[tuple[str, int], ...], k: int) -> list[str]:
    names = [name for name, _ in table]
    return rng.choices(names, weights=[weight for _, weight in table], k=k)


def make_installs(rng: random.Random, count: int) -> list[Install]:
    """`count` installations with distinct hashed session ids."""
    versions, countries = _pick(rng, VERSIONS, count), _pick(rng, COUNTRIES, count)
    return [Install(f"{rng.getrandbits(64):016x}", v, c) for v, c in zip(versions, countries, strict=True)]


def iso_hour(hour: int) -> str:
    """Unix hour start as 2025-11-12T20:00:00Z."""
    return datetime.fromtimestamp(hour, UTC).strftime("%Y-%m-%dT%H:00:00Z")


def current_hour() -> int:
    """Start of the current UTC hour, in Unix seconds."""
    return int(datetime.now(UTC).timestamp()) // HOUR * HOUR


def response_time(rng: random.Random) -> float:
    return round(rng.lognormvariate(RESPONSE_MU, RESPONSE_SIGMA), 1)


def event_dict(rng: random.Random, install: Install, hour: int, sequence: int) -> dict[str, Any]:
    """One event as a client sends it; the analytics level decides which fields it has."""
    level = _pick(rng, LEVELS, 1)[0]
    failed = rng.random() < ERROR_RATE
    event: dict[str, Any] = {
        "version": install.version,
        "tool": _pick(rng, TOOLS, 1)[0],
        "status": "error" if failed else "success",
        "timestamp_hour": iso_hour(hour),
        "analytics_level": level,
    }
    if failed:
        event["error_type"] = _pick(rng, ERROR_TYPES, 1)[0]
    if level == "minimal":
        return event
    event["response_time_ms"] = response_time(rng)
    event["service"] = _pick(rng, SERVICES, 1)[0]
    event["cache_hit"] = rng.random() < CACHE_HIT_RATE
    event["retry_count"] = 1 if failed else 0
    event["country"] = install.country
    if level == "detailed":
        event.update(session_id=install.session_id, sequence_number=sequence, parameters=PARAMETERS)
    return event


def batch_events(
    rng: random.Random, install: Install, size: int, newest_hour: int, span_hours: int = 24
) -> list[dict[str, Any]]:
    """One request's batch from one installation, timestamps spread over the last `span_hours`."""
    first = rng.randrange(1, 10_000)
    hours = [newest_hour - rng.randrange(span_hours) * HOUR for _ in range(size)]
    return [event_dict(rng, install, hour, first + i) for i, hour in enumerate(hours)]


def event_rows(
    rng: random.Random, installs: list[Install], hours: tuple[int, int], count: int, received_at: int
) -> list[tuple[Any, ...]]:
    """`count` rows in EVENT_COLUMNS order with hours in [hours[0], hours[1]); the fast path of event_dict."""
    tools, levels = _pick(rng, TOOLS, count), _pick(rng, LEVELS, count)
    services = _pick(rng, SERVICES, count)
    errors = _pick(rng, ERROR_TYPES, count)
    who = rng.choices(installs, k=count)
    low, high = hours[0] // HOUR, max(hours[0] // HOUR + 1, hours[1] // HOUR)
    rows: list[tuple[Any, ...]] = []
    for i in range(count):
        install, level = who[i], levels[i]
        failed = rng.random() < ERROR_RATE
        if level == "minimal":
            measured: tuple[Any, ...] = _NOT_MEASURED
        else:
            took = response_time(rng)
            cached = int(rng.random() < CACHE_HIT_RATE)
            measured = (took, latency_bucket(took), services[i], cached, int(failed), install.country)
        session = (install.session_id, i, PARAMETERS_JSON) if level == "detailed" else _NO_SESSION
        hour = rng.randrange(low, high) * HOUR
        error = errors[i] if failed else None
        rows.append((received_at, hour, install.version, tools[i], int(failed), level, *measured, error, *session))
    return rows


Rows = list[tuple[Any, ...]]
Write = Callable[[RowKind, Rows], None]  # how a database build stores one chunk of rows


def write_batch(kind: RowKind, rows: Rows) -> None:
    """Commit rows as the server's writer does: one write_batches transaction, rollups included."""
    write_batches([PendingBatch(rows=rows, response={}, kind=None if kind is EVENTS else kind)])
