"""The database: one unbound handle, opened by the app factory; SQLite specifics live here."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from peewee import Model, OperationalError
from playhouse.pool import PooledSqliteDatabase

from weather_metrics.core.errors import Unavailable

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schema.sql"
SCHEMA_VERSION = 5


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


def open_database(path: str, synchronous: str = "full", max_connections: int = 128, read_only: bool = False) -> None:
    """Bind the shared handle to a SQLite file and bring its schema up to date (or, read-only, only read it)."""
    Path(path).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
    if not database.deferred:
        database.close_all()  # pooled connections still point at the previous file
    database.init(
        path,
        max_connections=max_connections,
        stale_timeout=300,
        pragmas=sqlite_pragmas(synchronous) + ([("query_only", 1)] if read_only else []),
        check_same_thread=False,
    )
    if not read_only:
        with database.connection_context():
            apply_schema()


def apply_schema() -> None:
    """Create the schema from schema.sql, or migrate an older one."""
    conn = database.connection()
    conn.executescript(SCHEMA_PATH.read_text())
    row = database.execute_sql("SELECT MAX(version) FROM schema_version").fetchone()
    current = row[0] if row else None
    if current is not None and current > SCHEMA_VERSION:
        raise RuntimeError(f"database schema version {current} is newer than this release ({SCHEMA_VERSION})")
    # Versions 2 to 4 added tables, which the script above creates; versions 3 and 5 also
    # added a column to an existing table.
    if current is not None and current < 3:
        database.execute_sql("ALTER TABLE organizations ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'UTC'")
    if current is not None and current < 5:
        database.execute_sql("ALTER TABLE report_jobs ADD COLUMN heartbeat_at INTEGER")
    if current != SCHEMA_VERSION:
        database.execute_sql("DELETE FROM schema_version")
        database.execute_sql("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))


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
