"""Turning validated events into rows, and writing batches of rows with their rollups.

`write_batches` is the only code that writes ingested rows (/v1 events and, through
orgingest's RowKinds, organization metrics): the writer thread calls it, and so do the
benchmarks. Raw rows and every rollup change commit in one transaction.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from peewee import EXCLUDED, Case, fn

from weather_metrics.db import database, write_transaction
from weather_metrics.histogram import latency_bucket
from weather_metrics.models import (
    CountryDaily,
    ErrorDaily,
    Event,
    IdempotencyKey,
    LatencyDaily,
    ServiceDaily,
    Session,
    ToolHourly,
    VersionDaily,
)
from weather_metrics.validation import normalize_country, parse_timestamp

HOUR = 3600
DAY = 86400
MAX_FUTURE = timedelta(hours=1)

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


@dataclass(frozen=True, eq=False)
class RowKind:
    """A table the writer appends rows to, with the rollups folded from each commit's rows.

    `rollups` builds INSERT ... SELECT ... ON CONFLICT queries over the rows with
    `id > SINCE`; they are compiled once and bound to the commit's first new id.
    """

    table: str
    columns: tuple[str, ...]
    rollups: Callable[[], list[Any]]


@dataclass(eq=False)
class PendingBatch:
    """One accepted request on its way to the database."""

    rows: list[tuple[Any, ...]]
    response: dict[str, Any]
    idempotency_key: str | None = None
    body_hash: str | None = None
    kind: RowKind | None = None  # None: /v1 events
    api_key_id: str | None = None  # the key that sent it: its last_used_at is set on commit
    # Filled in by write_batches: the answer to give (the original one for a replay), or
    # `key_conflict` when the Idempotency-Key was already used for a different body.
    result: dict[str, Any] | None = field(default=None, repr=False)
    key_conflict: bool = False
    failure: str | None = None  # set when the batch itself cannot be written (see EventWriter)
    stored: int = 0
    done: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)


def window_problems(events: list[dict[str, Any]], now: datetime, retention_days: int) -> dict[str, str]:
    """Timestamps outside what the service keeps: more than an hour ahead, or past retention."""
    latest = now + MAX_FUTURE
    earliest = (now - timedelta(days=retention_days)).replace(minute=0, second=0, microsecond=0)
    problems = {}
    for index, event in enumerate(events):
        moment = parse_timestamp(event["timestamp_hour"])
        assert moment is not None  # validated before
        if moment > latest:
            problems[f"events[{index}].timestamp_hour"] = "Must not be more than 1 hour in the future"
        elif moment < earliest:
            problems[f"events[{index}].timestamp_hour"] = f"Older than the {retention_days}-day retention"
    return problems


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


def _add(model: Any, *names: str) -> dict[Any, Any]:
    return {getattr(model, n): getattr(model, n) + getattr(EXCLUDED, n) for n in names}


def _later(model: Any, name: str) -> dict[Any, Any]:
    ours, theirs = getattr(model, name), getattr(EXCLUDED, name)
    return {ours: Case(None, [(theirs > ours, theirs)], ours)}


SINCE = -987_654_321  # stands for "id of the last row before this transaction"


def _rollup_queries() -> list[Any]:
    """INSERT ... SELECT ... ON CONFLICT statements folding new rows into every rollup."""
    new = Event.id > SINCE
    # `+ 0` keeps the planner on the rowid range: grouping by the bare column would make
    # it walk the whole timestamp index instead (390 ms a commit on 10M rows).
    hour = Event.timestamp_hour + 0
    day = _day(Event.timestamp_hour)
    counted = fn.SUM(Case(None, [(Event.cache_hit == 1, 1)], 0))
    missed = fn.SUM(Case(None, [(Event.cache_hit == 0, 1)], 0))
    return [
        ToolHourly.insert_from(
            Event.select(
                hour,
                Event.tool,
                fn.COUNT(Event.id),
                fn.SUM(Event.is_error),
                fn.COUNT(Event.response_time_ms),
                fn.COALESCE(fn.SUM(Event.response_time_ms), 0),
                counted,
                missed,
            )
            .where(new)
            .group_by(hour, Event.tool),
            fields=[
                ToolHourly.hour,
                ToolHourly.tool,
                ToolHourly.calls,
                ToolHourly.errors,
                ToolHourly.timed_calls,
                ToolHourly.response_time_sum,
                ToolHourly.cache_hits,
                ToolHourly.cache_misses,
            ],
        ).on_conflict(
            conflict_target=[ToolHourly.hour, ToolHourly.tool],
            update=_add(
                ToolHourly, "calls", "errors", "timed_calls", "response_time_sum", "cache_hits", "cache_misses"
            ),
        ),
        LatencyDaily.insert_from(
            Event.select(day, Event.latency_bucket, fn.COUNT(Event.id))
            .where(new & Event.latency_bucket.is_null(False))
            .group_by(day, Event.latency_bucket),
            fields=[LatencyDaily.day, LatencyDaily.bucket, LatencyDaily.calls],
        ).on_conflict(conflict_target=[LatencyDaily.day, LatencyDaily.bucket], update=_add(LatencyDaily, "calls")),
        VersionDaily.insert_from(
            Event.select(day, Event.tool, Event.version, fn.COUNT(Event.id))
            .where(new)
            .group_by(day, Event.tool, Event.version),
            fields=[VersionDaily.day, VersionDaily.tool, VersionDaily.version, VersionDaily.calls],
        ).on_conflict(
            conflict_target=[VersionDaily.day, VersionDaily.tool, VersionDaily.version],
            update=_add(VersionDaily, "calls"),
        ),
        CountryDaily.insert_from(
            Event.select(day, Event.tool, Event.country, fn.COUNT(Event.id))
            .where(new & Event.country.is_null(False))
            .group_by(day, Event.tool, Event.country),
            fields=[CountryDaily.day, CountryDaily.tool, CountryDaily.country, CountryDaily.calls],
        ).on_conflict(
            conflict_target=[CountryDaily.day, CountryDaily.tool, CountryDaily.country],
            update=_add(CountryDaily, "calls"),
        ),
        ServiceDaily.insert_from(
            Event.select(day, Event.service, fn.COUNT(Event.id))
            .where(new & Event.service.is_null(False))
            .group_by(day, Event.service),
            fields=[ServiceDaily.day, ServiceDaily.service, ServiceDaily.calls],
        ).on_conflict(conflict_target=[ServiceDaily.day, ServiceDaily.service], update=_add(ServiceDaily, "calls")),
        ErrorDaily.insert_from(
            Event.select(day, fn.COALESCE(Event.error_type, "unknown"), fn.COUNT(Event.id), fn.MAX(hour))
            .where(new & (Event.is_error == 1))
            .group_by(day, fn.COALESCE(Event.error_type, "unknown")),
            fields=[ErrorDaily.day, ErrorDaily.error_type, ErrorDaily.errors, ErrorDaily.last_seen],
        ).on_conflict(
            conflict_target=[ErrorDaily.day, ErrorDaily.error_type],
            update={**_add(ErrorDaily, "errors"), **_later(ErrorDaily, "last_seen")},
        ),
        Session.insert_from(
            Event.select(Event.session_id, fn.MAX(hour))
            .where(new & Event.session_id.is_null(False))
            .group_by(Event.session_id),
            fields=[Session.session_id, Session.last_seen],
        ).on_conflict(conflict_target=[Session.session_id], update=_later(Session, "last_seen")),
    ]


EVENTS = RowKind("events", EVENT_COLUMNS, _rollup_queries)


class _CompiledStatements:
    """SQL built once per process and kind; peewee's query builder is too slow for every commit."""

    def __init__(self, kind: RowKind) -> None:
        self.kind = kind
        self._rollups: list[tuple[str, list[Any], int]] | None = None
        self._inserts: dict[int, str] = {}

    def rollups(self, since_id: int) -> list[tuple[str, list[Any]]]:
        if self._rollups is None:
            compiled = []
            for query in self.kind.rollups():
                sql, params = query.sql()
                compiled.append((sql, params, params.index(SINCE)))
            self._rollups = compiled
        out = []
        for sql, params, slot in self._rollups:
            bound = list(params)
            bound[slot] = since_id
            out.append((sql, bound))
        return out

    def insert(self, count: int) -> str:
        sql = self._inserts.get(count)
        if sql is None:
            p = database.param
            one = "(" + ", ".join([p] * len(self.kind.columns)) + ")"
            sql = f"INSERT INTO {self.kind.table} ({', '.join(self.kind.columns)}) VALUES " + ", ".join([one] * count)
            self._inserts[count] = sql
        return sql


_statements: dict[RowKind, _CompiledStatements] = {}
# Rows per multi-row INSERT: powers of two keep few statements cached, under SQLite's
# 32,766 bound parameters.
_CHUNKS = (1024, 256, 64, 16, 4, 1)


def compiled(kind: RowKind) -> _CompiledStatements:
    """The kind's SQL, compiled on first use."""
    statements = _statements.get(kind)
    if statements is None:
        statements = _statements[kind] = _CompiledStatements(kind)
    return statements


def _write_rows(kind: RowKind, rows: list[tuple[Any, ...]]) -> None:
    """Append rows of one kind and fold them into its rollups."""
    statements = compiled(kind)
    before = database.execute_sql(f"SELECT COALESCE(MAX(id), 0) FROM {kind.table}").fetchone()[0]
    start = 0
    for size in _CHUNKS:
        while len(rows) - start >= size:
            params = [value for row in rows[start : start + size] for value in row]
            database.execute_sql(statements.insert(size), params)
            start += size
    for sql, params in statements.rollups(before):
        database.execute_sql(sql, params)


def _claim_key(batch: PendingBatch, now: int, ttl: int) -> bool:
    """Record the batch's Idempotency-Key (replacing an expired one); False when it is taken.

    A taken key gives the batch its first answer, or marks a conflict when the body differs.
    """
    query = IdempotencyKey.insert(
        key=batch.idempotency_key,
        body_hash=batch.body_hash or "",
        response=json.dumps(batch.response),
        created_at=now,
    ).on_conflict(
        conflict_target=[IdempotencyKey.key],
        update={
            IdempotencyKey.body_hash: EXCLUDED.body_hash,
            IdempotencyKey.response: EXCLUDED.response,
            IdempotencyKey.created_at: EXCLUDED.created_at,
        },
        where=IdempotencyKey.created_at < now - ttl,  # expired but not yet pruned
    )
    # rowcount, not the insert id: a skipped insert reports the connection's last rowid.
    if database.execute(query).rowcount == 1:
        return True
    first = IdempotencyKey.get_by_id(batch.idempotency_key)
    if first.body_hash != (batch.body_hash or ""):
        batch.key_conflict = True
    else:
        batch.result = json.loads(first.response)
    return False


def write_batches(
    batches: list[PendingBatch],
    clock: Callable[[], float] | None = None,
    idempotency_ttl: int = 86400,
    within: Callable[[list[PendingBatch]], None] | None = None,
) -> int:
    """Write batches of any kind and fold them into the rollups in one transaction; returns rows stored.

    `within` runs last inside the transaction, with every batch's `stored` set: what it
    writes commits (or rolls back) with the rows.
    """
    now = int((clock or _now)())
    stored = 0
    with write_transaction():
        by_kind: dict[RowKind, list[tuple[Any, ...]]] = {}
        api_keys = set()
        for batch in batches:
            if batch.idempotency_key and not _claim_key(batch, now, idempotency_ttl):
                continue
            batch.result = batch.response
            batch.stored = len(batch.rows)
            by_kind.setdefault(batch.kind or EVENTS, []).extend(batch.rows)
            if batch.api_key_id is not None:
                api_keys.add(batch.api_key_id)
        for kind, rows in by_kind.items():
            if rows:
                _write_rows(kind, rows)
                stored += len(rows)
        stamped = _stamp_keys(api_keys, now)
        if within is not None:
            within(batches)
    _key_stamps.update(dict.fromkeys(stamped, now))  # only once committed
    return stored


_KEY_STAMP_SECONDS = 60
_key_stamps: dict[str, int] = {}


def _stamp_keys(key_ids: set[str], now: int) -> list[str]:
    """Set last_used_at of the API keys that sent batches, at most once a minute per key."""
    due = [k for k in sorted(key_ids) if now - _key_stamps.get(k, 0) >= _KEY_STAMP_SECONDS]
    for key_id in due:
        database.execute_sql("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (now, key_id))
    return due


def _now() -> float:
    return datetime.now(UTC).timestamp()
