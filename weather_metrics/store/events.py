"""The /v1 events row kind: the events table, its rollups, the row of one event and the statements folding it in."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from itertools import compress, repeat
from operator import add, is_not
from typing import Any

from peewee import AutoField, CompositeKey, FloatField, IntegerField, TextField

from weather_metrics.core.histogram import latency_bucket
from weather_metrics.core.times import DAY, HOUR, parse_timestamp
from weather_metrics.ingest.events.validation import normalize_country
from weather_metrics.store.db import BaseModel, FlagField
from weather_metrics.store.rowkind import Row, RowKind, Totals, no_rollup_queries


class Event(BaseModel):
    id = AutoField()
    received_at = IntegerField()
    timestamp_hour = IntegerField()
    version = TextField()
    tool = TextField()
    is_error = FlagField()
    analytics_level = TextField()
    response_time_ms = FloatField(null=True)
    latency_bucket = IntegerField(null=True)
    service = TextField(null=True)
    cache_hit = FlagField(null=True)
    retry_count = IntegerField(null=True)
    country = TextField(null=True)
    error_type = TextField(null=True)
    session_id = TextField(null=True)
    sequence_number = IntegerField(null=True)
    parameters = TextField(null=True)

    class Meta:
        table_name = "events"


class ToolHourly(BaseModel):
    hour = IntegerField()
    tool = TextField()
    calls = IntegerField()
    errors = IntegerField()
    timed_calls = IntegerField()
    response_time_sum = FloatField()
    cache_hits = IntegerField()
    cache_misses = IntegerField()

    class Meta:
        primary_key = CompositeKey("hour", "tool")


class ToolDaily(BaseModel):
    """ToolHourly summed per UTC day: a period's whole days are read here, only its other hours there.

    A 90-day period then sums 91 days of rows per tool, not 2,184 hours.
    """

    day = IntegerField()
    tool = TextField()
    calls = IntegerField()
    errors = IntegerField()
    timed_calls = IntegerField()
    response_time_sum = FloatField()
    cache_hits = IntegerField()
    cache_misses = IntegerField()

    class Meta:
        primary_key = CompositeKey("day", "tool")
        without_rowid = True


class LatencyDaily(BaseModel):
    day = IntegerField()
    bucket = IntegerField()
    calls = IntegerField()

    class Meta:
        primary_key = CompositeKey("day", "bucket")


class ToolLatencyDaily(BaseModel):
    """LatencyDaily per tool: each tool's percentiles."""

    day = IntegerField()
    tool = TextField()
    bucket = IntegerField()
    calls = IntegerField()

    class Meta:
        primary_key = CompositeKey("day", "tool", "bucket")
        without_rowid = True


LATENCY_SPANS = (4, 16, 64)
"""Days of ToolLatencySpans' spans: each starts on a multiple of its length since 1970-01-01."""


class ToolLatencySpans(BaseModel):
    """ToolLatencyDaily summed over spans of 4, 16 and 64 UTC days: a period reads a few spans and its days left over.

    A 90-day period then sorts about 9 spans' and days' rows for its GROUP BY, not 91 days'
    (query/spans.py `day_spans`). The spans hold the days up to span_folds' `through_day`;
    each later day is added once it ends (store/folds.py).
    """

    span = IntegerField()  # days
    start = IntegerField()  # the span's first day
    tool = TextField()
    bucket = IntegerField()
    calls = IntegerField()

    class Meta:
        primary_key = CompositeKey("span", "start", "tool", "bucket")
        without_rowid = True


class VersionDaily(BaseModel):
    day = IntegerField()
    tool = TextField()
    version = TextField()
    calls = IntegerField()

    class Meta:
        primary_key = CompositeKey("day", "tool", "version")


class CountryDaily(BaseModel):
    day = IntegerField()
    tool = TextField()
    country = TextField()
    calls = IntegerField()

    class Meta:
        primary_key = CompositeKey("day", "tool", "country")


class ServiceDaily(BaseModel):
    day = IntegerField()
    service = TextField()
    calls = IntegerField()

    class Meta:
        primary_key = CompositeKey("day", "service")


class ErrorDaily(BaseModel):
    day = IntegerField()
    error_type = TextField()
    errors = IntegerField()
    last_seen = IntegerField()

    class Meta:
        primary_key = CompositeKey("day", "error_type")


class Session(BaseModel):
    session_id = TextField(primary_key=True)
    last_seen = IntegerField()

    class Meta:
        table_name = "sessions"


class LastSeenDaily(BaseModel):
    """How many sessions were last seen on each UTC day: a period's active installs add up its days.

    A day all of whose sessions were seen again later holds 0.
    """

    day = IntegerField(primary_key=True)
    sessions = IntegerField()

    class Meta:
        table_name = "last_seen_daily"


EVENT_COLUMNS = (
    "received_at",
    "timestamp_hour",
    "version",
    "tool",
    "is_error",
    "analytics_level",
    "response_time_ms",
    "latency_bucket",
    "service",
    "cache_hit",
    "retry_count",
    "country",
    "error_type",
    "session_id",
    "sequence_number",
    "parameters",
)

IS_ERROR = EVENT_COLUMNS.index("is_error")


def event_row(event: dict[str, Any], received_at: int) -> tuple[Any, ...]:
    """The events-table row of one validated event; the timestamp is cut to the hour."""
    moment = parse_timestamp(event["timestamp_hour"])
    assert moment is not None  # validated before
    hour = int(moment.timestamp()) // HOUR * HOUR
    response_time = event.get("response_time_ms")
    cache_hit = event.get("cache_hit")
    country = event.get("country")
    parameters = event.get("parameters")
    return (
        received_at,
        hour,
        event["version"],
        event["tool"],
        1 if event["status"] == "error" else 0,
        event["analytics_level"],
        response_time,
        None if response_time is None else latency_bucket(response_time),
        event.get("service"),
        None if cache_hit is None else int(cache_hit),
        event.get("retry_count"),
        None if country is None else normalize_country(country),
        event.get("error_type"),
        event.get("session_id"),
        event.get("sequence_number"),
        None if parameters is None else json.dumps(parameters, separators=(",", ":"), sort_keys=True),
    )


def _event_totals(rows: list[Row]) -> list[Totals]:
    """Every rollup's figures over a commit's rows, in the order they are written.

    Counted by Counter over zipped columns, which runs in C: a loop per row in Python
    would cost more than the INSERT ... SELECT ... GROUP BY statements this replaced.
    Each Counter costs a pass over the rows, so rollups whose keys are few share one
    (`_per_install`), and those a coarser rollup sums are added up from its keys.
    Hours are positive (validated within the retention window), so `//` cuts them to
    days as SQL's integer division did.
    """
    _, hours, versions, tools, errors, _, times, buckets, services, caches, _, countries, types, sessions, _, _ = zip(
        *rows, strict=True
    )
    days = list(map({hour: hour // DAY * DAY for hour in set(hours)}.__getitem__, hours))
    hourly = _tool_hourly(list(zip(hours, tools, strict=True)), errors, times, caches)
    tool_latency = _bucketed(ToolLatencyDaily, Counter(zip(days, tools, buckets, strict=True)))
    return [
        hourly,
        _tool_daily(hourly),
        _latency_daily(tool_latency),
        tool_latency,
        # Per day, as tool_latency: the writer adds the days the spans already hold (store/folds.py).
        Totals(ToolLatencySpans, _key_of(ToolLatencySpans), ("calls",), tool_latency.rows, spans=LATENCY_SPANS),
        *_per_install(Counter(zip(days, tools, versions, countries, services, strict=True))),
        _error_daily(compress(zip(days, types, hours, strict=True), errors)),
        _sessions(set(zip(sessions, hours, strict=True))),
    ]


def _present(column: Row) -> list[bool]:
    """Whether each value of a column is not NULL: a selector for `compress`."""
    return list(map(is_not, column, repeat(None)))


def _key_of(model: Any) -> tuple[str, ...]:
    """The columns of a rollup table's primary key: what its upsert conflicts on."""
    key = model._meta.primary_key  # noqa: SLF001 - peewee's way to reach a model's fields
    return tuple(key.field_names) if isinstance(key, CompositeKey) else (key.column_name,)


def _bucketed(model: Any, counts: Counter[Row]) -> Totals:
    """A rollup whose one figure, `calls`, counts the rows of each key ending in a latency bucket.

    The untimed calls (bucket None) are counted too and left out here: cheaper than a
    pass to pick the timed rows before counting.
    """
    return Totals(model, _key_of(model), ("calls",), {key: (n,) for key, n in counts.items() if key[-1] is not None})


def _tool_hourly(keys: list[Row], errors: Row, times: Row, caches: Row) -> Totals:
    """Calls, errors, timed calls and their total time, cache hits and misses, per hour and tool.

    One count per distinct (key, error, timed, cache) and a loop over those: fewer passes
    than a count per figure.
    """
    timed = _present(times)
    spent: dict[Row, float] = {}
    for key, ms in compress(zip(keys, times, strict=True), timed):
        spent[key] = spent.get(key, 0.0) + ms
    figures: dict[Row, list[Any]] = {}
    for (key, failed, measured, cache), calls in Counter(zip(keys, errors, timed, caches, strict=True)).items():
        counts = figures.get(key)
        if counts is None:
            counts = figures[key] = [0, 0, 0, spent.get(key, 0.0), 0, 0]
        counts[0] += calls
        if failed:
            counts[1] += calls
        if measured:
            counts[2] += calls
        if cache == 1:
            counts[4] += calls
        elif cache == 0:
            counts[5] += calls
    rows = {key: tuple(counts) for key, counts in figures.items()}
    return Totals(ToolHourly, _key_of(ToolHourly), TOOL_HOURLY_FIGURES, rows)


TOOL_HOURLY_FIGURES = ("calls", "errors", "timed_calls", "response_time_sum", "cache_hits", "cache_misses")


def _tool_daily(hourly: Totals) -> Totals:
    """The hourly per-tool sums added up per UTC day: a long period reads a row a day."""
    rows: dict[Row, Row] = {}
    for (hour, tool), counts in hourly.rows.items():
        key = (hour // DAY * DAY, tool)
        day = rows.get(key)
        rows[key] = counts if day is None else tuple(map(add, day, counts))
    return Totals(ToolDaily, _key_of(ToolDaily), TOOL_HOURLY_FIGURES, rows)


def _latency_daily(tool_latency: Totals) -> Totals:
    """Calls per day and latency bucket: tool_latency's counts added up over the tools."""
    calls: dict[Row, int] = {}
    for (day, _, bucket), (n,) in tool_latency.rows.items():
        calls[day, bucket] = calls.get((day, bucket), 0) + n
    return Totals(LatencyDaily, _key_of(LatencyDaily), ("calls",), {key: (n,) for key, n in calls.items()})


def _per_install(counts: Counter[Row]) -> list[Totals]:
    """Calls per day, tool and version; per day, tool and country; per day and service.

    From one count per (day, tool, version, country, service): a commit has far fewer
    of these than rows (a third, with bench/ingest.py's fleet), so adding them up costs
    less than two more Counters over the rows.
    """
    versions: dict[Row, int] = {}
    countries: dict[Row, int] = {}
    services: dict[Row, int] = {}
    for (day, tool, version, country, service), n in counts.items():
        versions[day, tool, version] = versions.get((day, tool, version), 0) + n
        if country is not None:
            countries[day, tool, country] = countries.get((day, tool, country), 0) + n
        if service is not None:
            services[day, service] = services.get((day, service), 0) + n
    return [
        Totals(model, _key_of(model), ("calls",), {key: (n,) for key, n in calls.items()})
        for model, calls in ((VersionDaily, versions), (CountryDaily, countries), (ServiceDaily, services))
    ]


def _error_daily(failures: Iterable[tuple[int, str | None, int]]) -> Totals:
    """Errors per day and type (`unknown` when the event named none), and the latest hour each was seen."""
    figures: dict[Row, Row] = {}
    for day, error_type, hour in failures:
        key = (day, "unknown" if error_type is None else error_type)
        errors, last_seen = figures.get(key, (0, hour))
        figures[key] = (errors + 1, max(last_seen, hour))
    return Totals(ErrorDaily, _key_of(ErrorDaily), ("errors", "last_seen"), figures, frozenset({"last_seen"}))


def _sessions(seen: Iterable[tuple[str | None, int]]) -> Totals:
    """The latest hour each session was seen in, from the distinct (session, hour) pairs; None is no session."""
    latest: dict[str | None, int] = {}
    for session, hour in seen:
        if hour > latest.get(session, -1):
            latest[session] = hour
    latest.pop(None, None)
    figures = {(session,): (hour,) for session, hour in latest.items()}
    return Totals(Session, _key_of(Session), ("last_seen",), figures, frozenset({"last_seen"}), LastSeenDaily)


EVENTS = RowKind("events", EVENT_COLUMNS, no_rollup_queries, _event_totals)
