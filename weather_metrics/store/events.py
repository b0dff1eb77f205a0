"""The /v1 events row kind: the events table, its rollups, the row of one event and the statements folding it in."""

from __future__ import annotations

import json
from typing import Any

from peewee import (
    EXCLUDED,
    SQL,
    AutoField,
    Case,
    CompositeKey,
    FloatField,
    IntegerField,
    TextField,
    fn,
)

from weather_metrics.core.histogram import latency_bucket
from weather_metrics.core.times import DAY, HOUR, parse_timestamp
from weather_metrics.ingest.events.validation import normalize_country
from weather_metrics.store.db import BaseModel, FlagField
from weather_metrics.store.rowkind import RowKind, new_rows, summed


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


WEEK = 7 * DAY
"""Blocks of ToolLatencyWeekly: 7 days from a multiple of WEEK in Unix time (a Thursday, UTC)."""


class ToolLatencyWeekly(BaseModel):
    """ToolLatencyDaily summed per block of 7 days: a period's whole blocks come from here, its other days from there.

    A 90-day period then sorts 13 blocks and at most 12 days of rows, not 91 days.
    """

    week = IntegerField()  # the block's first day
    tool = TextField()
    bucket = IntegerField()
    calls = IntegerField()

    class Meta:
        primary_key = CompositeKey("week", "tool", "bucket")
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


def _day(column: Any) -> Any:
    # Integer division in SQL; peewee's `%` operator means LIKE, not modulo.
    return column / DAY * DAY


def _later(model: Any, name: str) -> dict[Any, Any]:
    ours, theirs = getattr(model, name), getattr(EXCLUDED, name)
    return {ours: Case(None, [(theirs > ours, theirs)], ours)}


_FIRST_THREE = (SQL("1"), SQL("2"), SQL("3"))  # the first three selected columns, by position


def _tool_latency(model: Any, period: Any, span: int) -> Any:
    """Fold new rows into a per-tool histogram whose `period` column holds the start of a day or block."""
    # Upserts in key order, so they walk the table's B-tree once. By position: SQLite would
    # sort again for an ORDER BY that repeats the start expression (its bound numbers differ).
    return model.insert_from(
        Event.select(Event.timestamp_hour / span * span, Event.tool, Event.latency_bucket, fn.COUNT(Event.id))
        .where(new_rows(Event.id) & Event.latency_bucket.is_null(False))
        .group_by(*_FIRST_THREE)
        .order_by(*_FIRST_THREE),
        fields=[period, model.tool, model.bucket, model.calls],
    ).on_conflict(conflict_target=[period, model.tool, model.bucket], update=summed(model, "calls"))


def _tool_sums(model: Any, period: Any, start: Any) -> Any:
    """Fold new rows into per-tool sums whose `period` column holds the start of an hour or a day."""
    return model.insert_from(
        Event.select(
            start,
            Event.tool,
            fn.COUNT(Event.id),
            fn.SUM(Event.is_error),
            fn.COUNT(Event.response_time_ms),
            fn.COALESCE(fn.SUM(Event.response_time_ms), 0),
            fn.SUM(Case(None, [(Event.cache_hit == 1, 1)], 0)),
            fn.SUM(Case(None, [(Event.cache_hit == 0, 1)], 0)),
        )
        .where(new_rows(Event.id))
        .group_by(start, Event.tool),
        fields=[
            period,
            model.tool,
            model.calls,
            model.errors,
            model.timed_calls,
            model.response_time_sum,
            model.cache_hits,
            model.cache_misses,
        ],
    ).on_conflict(
        conflict_target=[period, model.tool],
        update=summed(model, "calls", "errors", "timed_calls", "response_time_sum", "cache_hits", "cache_misses"),
    )


def _rollup_queries() -> list[Any]:
    """INSERT ... SELECT ... ON CONFLICT statements folding new rows into every rollup."""
    new = new_rows(Event.id)
    # `+ 0` keeps the planner on the rowid range: grouping by the bare column would make
    # it walk the whole timestamp index instead (390 ms a commit on 10M rows).
    hour = Event.timestamp_hour + 0
    day = _day(Event.timestamp_hour)
    return [
        _tool_sums(ToolHourly, ToolHourly.hour, hour),
        _tool_sums(ToolDaily, ToolDaily.day, day),
        LatencyDaily.insert_from(
            Event.select(day, Event.latency_bucket, fn.COUNT(Event.id))
            .where(new & Event.latency_bucket.is_null(False))
            .group_by(day, Event.latency_bucket),
            fields=[LatencyDaily.day, LatencyDaily.bucket, LatencyDaily.calls],
        ).on_conflict(conflict_target=[LatencyDaily.day, LatencyDaily.bucket], update=summed(LatencyDaily, "calls")),
        _tool_latency(ToolLatencyDaily, ToolLatencyDaily.day, DAY),
        _tool_latency(ToolLatencyWeekly, ToolLatencyWeekly.week, WEEK),
        VersionDaily.insert_from(
            Event.select(day, Event.tool, Event.version, fn.COUNT(Event.id))
            .where(new)
            .group_by(day, Event.tool, Event.version),
            fields=[VersionDaily.day, VersionDaily.tool, VersionDaily.version, VersionDaily.calls],
        ).on_conflict(
            conflict_target=[VersionDaily.day, VersionDaily.tool, VersionDaily.version],
            update=summed(VersionDaily, "calls"),
        ),
        CountryDaily.insert_from(
            Event.select(day, Event.tool, Event.country, fn.COUNT(Event.id))
            .where(new & Event.country.is_null(False))
            .group_by(day, Event.tool, Event.country),
            fields=[CountryDaily.day, CountryDaily.tool, CountryDaily.country, CountryDaily.calls],
        ).on_conflict(
            conflict_target=[CountryDaily.day, CountryDaily.tool, CountryDaily.country],
            update=summed(CountryDaily, "calls"),
        ),
        ServiceDaily.insert_from(
            Event.select(day, Event.service, fn.COUNT(Event.id))
            .where(new & Event.service.is_null(False))
            .group_by(day, Event.service),
            fields=[ServiceDaily.day, ServiceDaily.service, ServiceDaily.calls],
        ).on_conflict(conflict_target=[ServiceDaily.day, ServiceDaily.service], update=summed(ServiceDaily, "calls")),
        ErrorDaily.insert_from(
            Event.select(day, fn.COALESCE(Event.error_type, "unknown"), fn.COUNT(Event.id), fn.MAX(hour))
            .where(new & (Event.is_error == 1))
            .group_by(day, fn.COALESCE(Event.error_type, "unknown")),
            fields=[ErrorDaily.day, ErrorDaily.error_type, ErrorDaily.errors, ErrorDaily.last_seen],
        ).on_conflict(
            conflict_target=[ErrorDaily.day, ErrorDaily.error_type],
            update={**summed(ErrorDaily, "errors"), **_later(ErrorDaily, "last_seen")},
        ),
        Session.insert_from(
            Event.select(Event.session_id, fn.MAX(hour))
            .where(new & Event.session_id.is_null(False))
            .group_by(Event.session_id),
            fields=[Session.session_id, Session.last_seen],
        ).on_conflict(conflict_target=[Session.session_id], update=_later(Session, "last_seen")),
    ]


EVENTS = RowKind("events", EVENT_COLUMNS, _rollup_queries)
