"""The database: one unbound handle, opened by the app factory; SQLite specifics live here."""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from peewee import Model, OperationalError
from playhouse.pool import PooledSqliteDatabase

from weather_metrics.core.errors import Unavailable
from weather_metrics.store.backup import backup, hold_service_lock, private_file
from weather_metrics.store.migrate import SCHEMA_VERSION, schema_version, upgrade

log = logging.getLogger(__name__)


class StorageFull(Unavailable):
    """The disk holding the database is full: nothing of the request was stored; retry once there is space."""


def storage_error(exc: BaseException) -> StorageFull | None:
    """A database failure that is the disk's, not the request's: SQLite reports a full disk as SQLITE_FULL.

    The chain is searched: after SQLITE_FULL, SQLite has rolled back already, so the error
    that surfaces is the failed rollback, raised while handling the full disk.
    """
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            break
        if isinstance(seen, (OperationalError, sqlite3.OperationalError)) and "disk is full" in str(seen):
            return StorageFull("The disk holding the database is full; nothing was stored. Retry later")
        seen = seen.__cause__ or seen.__context__
    return None


# Bound by `open_database`; models in models.py use it.
database = PooledSqliteDatabase(None)
_bindings = 0  # how many times `open_database` has bound it, in this process


def binding() -> int:
    """Which binding of `database` this is: answers kept in memory must not outlive it."""
    return _bindings


def sqlite_pragmas(synchronous: str) -> list[tuple[str, object]]:
    """Pragmas every connection gets: WAL lets readers run beside the writer."""
    return [
        ("journal_mode", "wal"),
        ("synchronous", synchronous.upper()),
        ("busy_timeout", 10_000),
        ("foreign_keys", 1),
        ("cache_size", -32_000),
        ("temp_store", "memory"),
    ]


def open_database(
    path: str,
    synchronous: str = "full",
    max_connections: int = 128,
    read_only: bool = False,
    backup_dir: Path | None = None,
) -> None:
    """Bind the shared handle to a SQLite file and bring its schema up to date (or, read-only, only read it).

    The file (and so its WAL, which SQLite creates alike) is readable by its owner only. Before
    migrating an older schema, a copy goes to `backup_dir` (None: no copy). This process holds
    the database's service lock from now on, so a restore refuses to replace it underneath.
    """
    global _bindings
    _bindings += 1
    file = Path(path).expanduser().resolve()
    file.parent.mkdir(parents=True, exist_ok=True)
    if not database.deferred:
        _release_pool()
    if not read_only:
        for own in (file, Path(f"{file}-wal"), Path(f"{file}-shm")):
            if own == file or own.exists():
                private_file(own)
        hold_service_lock(file)
    database.init(
        path,
        max_connections=max_connections,
        stale_timeout=300,
        pragmas=sqlite_pragmas(synchronous) + ([("query_only", 1)] if read_only else []),
        check_same_thread=False,
    )
    if not read_only:
        with database.connection_context():
            conn = database.connection()
            current = schema_version(conn)
            if backup_dir is not None and current is not None and current < SCHEMA_VERSION:
                stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
                copy = backup(file, backup_dir / f"{file.stem}-v{current}-before-upgrade-{stamp}.db")
                log.warning("schema upgrade from version %d: a copy of the database is at %s", current, copy.path)
            upgrade(conn)


def _release_pool() -> None:
    """Drop the pool's connections before binding it to another file (or the same one again).

    Idle connections are closed. Those in use belong to the threads of an app built earlier in
    this process (tests build several): closing one while its thread runs a statement crashes
    the interpreter, so they are forgotten instead, left to their threads, and closed when those
    threads end. The pool never hands them out again, so no new connection reaches the old file.
    """
    database.close()
    with database._pool_lock:  # noqa: SLF001 - the pool has no call to forget a connection
        database.close_idle()
        database._in_use.clear()  # noqa: SLF001
        database._pool_available.notify_all()  # noqa: SLF001


def ping() -> bool:
    """True when the database answers a query."""
    try:
        database.execute_sql("SELECT 1 FROM schema_version LIMIT 1").fetchone()
        return True
    except Exception:  # noqa: BLE001 - any failure means the database is unusable
        return False


def pool_status() -> dict[str, int]:
    """Open, idle and waiting connections of the pool."""
    in_use = len(database._in_use)  # noqa: SLF001 - the pool has no public counters
    idle = len(database._connections)  # noqa: SLF001
    return {"total_connections": in_use + idle, "idle_connections": idle, "waiting_count": 0}


def write_transaction():  # type: ignore[no-untyped-def]
    """A write transaction that takes SQLite's write lock at BEGIN, so it never fails mid-way."""
    return database.atomic(lock_type="IMMEDIATE")


class BaseModel(Model):
    class Meta:
        database = database
        legacy_table_names = False
