"""Writing batches of rows with their rollups: the only code that writes ingested rows.

`write_batches` runs on the writer thread (and in the benchmarks). Raw rows of every
kind (store/events.py, agents.py, productivity.py) and every rollup change commit in one
transaction.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain
from operator import add
from typing import Any

from peewee import EXCLUDED

from weather_metrics.core.times import DAY
from weather_metrics.store import folds, versions
from weather_metrics.store.db import column_types, copy_lines, database, execute, is_postgresql, write_transaction
from weather_metrics.store.events import EVENTS, IS_ERROR
from weather_metrics.store.models import IdempotencyKey
from weather_metrics.store.pgtext import array_text, copy_text_lines
from weather_metrics.store.rowkind import SINCE, UNTIL, Row, RowKind, Totals


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
    # Called by the writer's thread once `done` is set: how the server's event loop learns of a commit.
    on_done: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    @property
    def organization_id(self) -> str | None:
        """The organization whose rows these are; None for /v1 events (every row of a batch shares it)."""
        if self.kind is None or not self.rows:
            return None
        return self.rows[0][self.kind.columns.index("organization_id")]  # type: ignore[no-any-return]

    def event_errors(self) -> int:
        """How many of a /v1 batch's events are errors."""
        return sum(row[IS_ERROR] for row in self.rows)


class _CompiledStatements:
    """SQL built once per process and kind; peewee's query builder is too slow for every commit."""

    def __init__(self, kind: RowKind) -> None:
        self.kind = kind
        self._rollups: list[tuple[str, list[Any], int, int]] | None = None
        self._inserts: dict[int, str] = {}

    @property
    def ranged(self) -> bool:
        """Whether the kind has rollup statements over an id range (then the commit's ids are looked up)."""
        return bool(self._compiled_rollups())

    def _compiled_rollups(self) -> list[tuple[str, list[Any], int, int]]:
        if self._rollups is None:
            compiled = []
            for query in self.kind.rollups():
                sql, params = query.sql()
                compiled.append((sql, params, params.index(SINCE), params.index(UNTIL)))
            self._rollups = compiled
        return self._rollups

    def rollups(self, since_id: int, until_id: int) -> list[tuple[str, list[Any]]]:
        out = []
        for sql, params, since, until in self._compiled_rollups():
            bound = list(params)
            bound[since], bound[until] = since_id, until_id
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


# By dialect as well as kind: a process that binds the database to the other backend
# (tests do) must not send one dialect's placeholders to the other.
_statements: dict[tuple[RowKind, type], _CompiledStatements] = {}


# Rows per multi-row INSERT: powers of two keep few statements cached, under SQLite's
# 32,766 bound parameters.
_CHUNKS = (1024, 256, 64, 16, 4, 1)


def compiled(kind: RowKind) -> _CompiledStatements:
    """The kind's SQL in the bound database's dialect, compiled on first use."""
    key = (kind, type(database.obj))
    statements = _statements.get(key)
    if statements is None:
        statements = _statements[key] = _CompiledStatements(kind)
    return statements


@dataclass(frozen=True)
class _KindRows:
    """One kind's rows of a commit, with what is worked out before the write lock is taken.

    On PostgreSQL the processes' writers take turns under that lock: Python that runs while
    one holds it stalls the others.
    """

    kind: RowKind
    rows: list[tuple[Any, ...]]
    upserts: list[Totals | _Ready]  # the rollups added up in Python (kind.totals), made ready where they can be
    copy: str  # the rows as COPY text on PostgreSQL; "" on SQLite


@dataclass(frozen=True)
class _Ready:
    """A rollup's rows in key order and, on PostgreSQL, their arrays: what its upsert needs no lock for."""

    totals: Totals
    rows: list[tuple[Any, ...]]
    arrays: list[str] | None


def _ready(totals: Totals) -> _Ready:
    # Each row is its key and then its figures, in the columns' order. Keys are distinct, so
    # sorting whole rows puts them in key order without comparing any figure.
    rows = sorted(map(add, totals.rows, totals.rows.values()))
    # PostgreSQL reads an array literal per column much faster than a VALUES parameter per value
    # (4.8 against 8.9 ms for 730 rows of tool_latency_daily); unnest keeps the key order.
    arrays = [array_text(column) for column in zip(*rows, strict=True)] if rows and is_postgresql() else None
    return _Ready(totals, rows, arrays)


def _by_kind(batches: list[PendingBatch]) -> dict[RowKind, _KindRows]:
    grouped: dict[RowKind, list[tuple[Any, ...]]] = {}
    for batch in batches:
        grouped.setdefault(batch.kind or EVENTS, []).extend(batch.rows)
    return {
        kind: _KindRows(
            kind,
            rows,
            # A span rollup's rows depend on span_folds, read under the lock: it is made ready there.
            [totals if totals.spans else _ready(totals) for totals in kind.totals(rows)] if kind.totals else [],
            copy_text_lines(rows) if is_postgresql() else "",
        )
        for kind, rows in grouped.items()
        if rows
    }


def _write_rows(part: _KindRows) -> None:
    """Append rows of one kind and fold them into its rollups."""
    kind = part.kind
    statements = compiled(kind)
    ranged = statements.ranged
    if ranged:
        before = execute(f"SELECT COALESCE(MAX(id), 0) FROM {kind.table}").fetchone()[0]
    if is_postgresql():
        copy_lines(kind.table, kind.columns, part.copy)
    else:
        _insert(statements, part.rows)
    if ranged:
        after = execute(f"SELECT COALESCE(MAX(id), 0) FROM {kind.table}").fetchone()[0]
        for sql, params in statements.rollups(before, after):
            database.execute_sql(sql, params)
    for totals in part.upserts:
        upsert_totals(totals)


# SQLite's bound on a statement's parameters (PostgreSQL's is 65,535).
_MAX_PARAMETERS = 32_766


def upsert_totals(rollup: Totals | _Ready) -> None:
    """Add a rollup's new figures to its table, in key order, in a few multi-row statements (`_Ready`: made
    ready before the write lock)."""
    ready = rollup if isinstance(rollup, _Ready) else None
    totals = rollup.totals if isinstance(rollup, _Ready) else rollup
    if totals.spans:
        totals = folds.spanned(totals)
    table = totals.model._meta.table_name  # noqa: SLF001 - peewee's way to reach a model's table
    if totals.tally is not None:
        upsert_totals(_tally_moves(totals, table))
    if ready is None:
        ready = _ready(totals)
    if ready.arrays is not None:  # PostgreSQL: one statement, an array per column (see _upsert)
        database.execute_sql(_upsert(totals, table, 0), ready.arrays)
        return
    rows = ready.rows
    start = 0
    for size in _upsert_sizes(len(rows), len(totals.key) + len(totals.figures)):
        database.execute_sql(_upsert(totals, table, size), list(chain.from_iterable(rows[start : start + size])))
        start += size


# Each rollup's upsert around its VALUES rows, by dialect: built once, not at every commit.
# Not by number of rows: on PostgreSQL that number is any up to the parameter bound.
_upserts: dict[tuple[Any, ...], tuple[str, str, str]] = {}


def _upsert(totals: Totals, table: str, size: int) -> str:
    """The statement adding `size` rows of `totals` to `table`."""
    cache_key = (table, totals.key, totals.figures, totals.latest, database.param)
    parts = _upserts.get(cache_key)
    if parts is None:
        changes = ", ".join(
            f"{c} = CASE WHEN excluded.{c} > {table}.{c} THEN excluded.{c} ELSE {table}.{c} END"
            if c in totals.latest
            else f"{c} = {table}.{c} + excluded.{c}"
            for c in totals.figures
        )
        columns = totals.key + totals.figures
        conflict = f" ON CONFLICT ({', '.join(totals.key)}) DO UPDATE SET {changes}"
        if is_postgresql():  # every row in one statement, a parameter per column (see _ready)
            types = column_types(table)
            arrays = ", ".join(f"%s::{types[column]}[]" for column in columns)
            parts = (f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({arrays})", "", conflict)
        else:
            parts = (
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ",
                "(" + ", ".join("?" * len(columns)) + ")",
                conflict,
            )
        _upserts[cache_key] = parts
    head, one, tail = parts
    return head + ", ".join([one] * size) + tail


# Keys per read of their stored values: under SQLite's bound on a statement's parameters.
_LOOKUP_CHUNK = 10_000


def _tally_moves(totals: Totals, table: str) -> Totals:
    """The changes to `totals.tally`: +1 on the new day of each key whose day of its latest time moves, -1 on the old.

    Reads the stored times of the keys before they are upserted (the writer holds the write
    lock, so nothing changes them in between).
    """
    (key,), (column,) = totals.key, totals.figures
    keys = [k for (k,) in totals.rows]
    stored: dict[Any, int] = {}
    for start in range(0, len(keys), _LOOKUP_CHUNK):
        part = keys[start : start + _LOOKUP_CHUNK]
        marks = ", ".join([database.param] * len(part))
        stored.update(database.execute_sql(f"SELECT {key}, {column} FROM {table} WHERE {key} IN ({marks})", part))
    moves: dict[Row, int] = {}
    for (name,), (time,) in totals.rows.items():
        old = stored.get(name)
        if old is not None and (time <= old or time // DAY == old // DAY):
            continue
        if old is not None:
            moves[(old // DAY * DAY,)] = moves.get((old // DAY * DAY,), 0) - 1
        moves[(time // DAY * DAY,)] = moves.get((time // DAY * DAY,), 0) + 1
    day, count = (field.column_name for field in totals.tally._meta.sorted_fields)  # noqa: SLF001 - peewee's
    return Totals(totals.tally, (day,), (count,), {k: (n,) for k, n in moves.items() if n})


def _upsert_sizes(count: int, width: int) -> list[int]:
    """Rows of each upsert statement for `count` rows of `width` columns.

    Powers of two (SQLite; PostgreSQL takes a rollup's rows as arrays in one statement): a
    statement of any other length would be compiled afresh at almost every commit (the number
    of keys changes), which cost more than the upserts themselves; a dozen lengths per table
    stay in the connection's statement cache.
    """
    most = _MAX_PARAMETERS // width
    sizes, size = [], 1 << (most.bit_length() - 1)
    while count:
        while size > count:
            size //= 2
        sizes.append(size)
        count -= size
    return sizes


def _insert(statements: _CompiledStatements, rows: list[tuple[Any, ...]]) -> None:
    """Append rows with multi-row INSERTs of a few fixed sizes (SQLite)."""
    start = 0
    for size in _CHUNKS:
        while len(rows) - start >= size:
            database.execute_sql(statements.insert(size), list(chain.from_iterable(rows[start : start + size])))
            start += size


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
    idempotency_ttl: int = DAY,
    within: Callable[[list[PendingBatch]], None] | None = None,
) -> int:
    """Write batches of any kind and fold them into the rollups in one transaction; returns rows stored.

    `within` runs last inside the transaction, with every batch's `stored` set: what it
    writes commits (or rolls back) with the rows.
    """
    now = int((clock or _now)())
    stored = 0
    parts = _by_kind(batches)  # before the lock; again inside should a repeated key leave a batch out
    with write_transaction():
        taken = [b for b in batches if not (b.idempotency_key and not _claim_key(b, now, idempotency_ttl))]
        if len(taken) < len(batches):
            parts = _by_kind(taken)
        api_keys = set()
        for batch in taken:
            batch.result = batch.response
            batch.stored = len(batch.rows)
            if batch.api_key_id is not None:
                api_keys.add(batch.api_key_id)
        for part in parts.values():
            _write_rows(part)
            stored += len(part.rows)
        versions.bump(_changed_versions(parts, now))  # commits with the rows
        stamped = _stamp_keys(api_keys, now)
        if within is not None:
            within(batches)
    _key_stamps.update(dict.fromkeys(stamped, now))  # only once committed
    return stored


def _changed_versions(parts: dict[RowKind, _KindRows], now: int) -> list[str]:
    """The data versions a commit of these rows raises: each kind's, and the settled agent days' if reached."""
    names = [kind.table for kind in parts]
    for kind, part in parts.items():
        if kind.table == versions.AGENT_EXECUTIONS:
            hour = kind.columns.index("hour")
            if min(row[hour] for row in part.rows) < versions.settled_before(now):
                names.append(versions.AGENT_HISTORY)
    return names


_KEY_STAMP_SECONDS = 60
_key_stamps: dict[str, int] = {}


def _stamp_keys(key_ids: set[str], now: int) -> list[str]:
    """Set last_used_at of the API keys that sent batches, at most once a minute per key."""
    due = [k for k in sorted(key_ids) if now - _key_stamps.get(k, 0) >= _KEY_STAMP_SECONDS]
    for key_id in due:
        execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (now, key_id))
    return due


def _now() -> float:
    return datetime.now(UTC).timestamp()
