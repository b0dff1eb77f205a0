"""The database: one unbound handle, opened by the app factory on SQLite or PostgreSQL.

`database` is a proxy bound by `open_database` to a pooled SQLite file (a path) or a pooled
PostgreSQL database (a `postgresql://` URL); everything else reaches the database through
it. Raw SQL is written once, with `?` placeholders, and runs through `execute`.
"""

from __future__ import annotations

import io
import logging
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from peewee import DatabaseProxy, IntegerField, InterfaceError, Model, OperationalError
from playhouse.pool import PooledPostgresqlDatabase, PooledSqliteDatabase

from weather_metrics.core.errors import ServiceError, Unavailable
from weather_metrics.store import pgtext
from weather_metrics.store.backup import backup, hold_service_lock, private_file
from weather_metrics.store.migrate import SCHEMA_VERSION, schema_version, upgrade

log = logging.getLogger(__name__)

POSTGRESQL_URL = re.compile(r"postgres(ql)?://", re.IGNORECASE)
DISK_FULL = "53100"  # PostgreSQL's SQLSTATE for a full disk


def is_url(location: str) -> bool:
    """True when the `database` setting names a PostgreSQL server rather than a SQLite file."""
    return bool(POSTGRESQL_URL.match(location))


def resolved(location: str) -> str:
    """The `database` setting in full: a SQLite file's absolute path, or the URL as given."""
    return location if is_url(location) else str(Path(location).expanduser().resolve())


class CannotOpen(ServiceError):
    """The database a URL names cannot be opened; the message has the URL without its password, and the reason."""

    def __init__(self, url: str, reason: BaseException) -> None:
        safe, secrets = without_password(url)
        lines = str(reason).replace(url, safe).replace("FATAL:", "").splitlines()
        text = "; ".join(" ".join(line.split()) for line in lines if line.strip())
        for secret in sorted(secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        super().__init__(f"cannot open {safe}: {text or type(reason).__name__}")


def without_password(url: str) -> tuple[str, set[str]]:
    """The URL with its password (in the user part or a password= parameter) shown as ***, and the passwords."""
    scheme, _, rest = url.partition("://")
    where, mark, query = rest.partition("?")
    userinfo, at, host = where.rpartition("@")  # the last @: a password may hold one
    user, colon, password = userinfo.partition(":")
    secrets = {password, unquote(password)} if colon else set()
    pairs = []
    for pair in query.split("&") if mark else []:
        key, equals, value = pair.partition("=")
        if unquote(key) == "password":
            secrets |= {value, unquote(value)}
            value = "***"
        pairs.append(key + equals + value)
    where = f"{user}{':***' if colon else ''}{at}{host}"
    return f"{scheme}://{where}{mark}{'&'.join(pairs)}", {secret for secret in secrets if secret}


class StorageFull(Unavailable):
    """The disk holding the database is full: nothing of the request was stored; retry once there is space."""


def storage_error(exc: BaseException) -> StorageFull | None:
    """A database failure that is the disk's, not the request's: SQLITE_FULL, or PostgreSQL's 53100.

    The chain is searched: after SQLITE_FULL, SQLite has rolled back already, so the error
    that surfaces is the failed rollback, raised while handling the full disk.
    """
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            break
        full_sqlite = isinstance(seen, (OperationalError, sqlite3.OperationalError)) and "disk is full" in str(seen)
        if full_sqlite or getattr(seen, "pgcode", None) == DISK_FULL:
            return StorageFull("The disk holding the database is full; nothing was stored. Retry later")
        seen = seen.__cause__ or seen.__context__
    return None


# Bound by `open_database`; models in models.py use it.
database = DatabaseProxy()
_bindings = 0  # how many times `open_database` has bound it, in this process


def binding() -> int:
    """Which binding of `database` this is: answers kept in memory must not outlive it."""
    return _bindings


def is_postgresql() -> bool:
    """True when the bound database is PostgreSQL."""
    return isinstance(database.obj, PooledPostgresqlDatabase)


def copy_rows(table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """Append rows on PostgreSQL with COPY: about four times cheaper than a multi-row INSERT."""
    copy_lines(table, columns, pgtext.copy_text_lines(rows))


def copy_lines(table: str, columns: tuple[str, ...], text: str) -> None:
    """Append rows given as lines of COPY's text format."""
    database.cursor().copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", io.StringIO(text))


_column_types: dict[str, dict[str, str]] = {}


def column_types(table: str) -> dict[str, str]:
    """A PostgreSQL table's columns and their types (as `format_type` writes them), read once per process."""
    types = _column_types.get(table)
    if types is None:
        rows = database.execute_sql(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            (table,),
        )
        types = _column_types[table] = dict(rows)
    return types


def execute(sql: str, params: Any = ()) -> Any:
    """Run raw SQL written with `?` placeholders on either backend; the cursor."""
    return database.execute_sql(pyformat(sql) if is_postgresql() else sql, params)


def pyformat(sql: str) -> str:
    """SQL written with `?` placeholders in psycopg2's style: `%s`, with a literal `%` doubled."""
    return sql.replace("%", "%%").replace("?", "%s")


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
    location: str,
    synchronous: str = "full",
    max_connections: int = 128,
    read_only: bool = False,
    backup_dir: Path | None = None,
) -> None:
    """Bind the shared handle to a SQLite file or a PostgreSQL URL and bring its schema up to date.

    Read-only, nothing is written (a SQLite file is opened with mode=ro). Otherwise, on SQLite,
    the file (and so its WAL, which SQLite creates alike) is readable by its owner only; before
    migrating an older schema, a copy goes to `backup_dir` (None: no copy), and this process
    holds the database's service lock from now on, so a restore refuses to replace it
    underneath. On PostgreSQL, copies are pg_dump's job (docs/storage.md).
    """
    global _bindings
    _bindings += 1
    if database.obj is not None:
        _release_pool()
    if is_url(location):
        database.initialize(_postgresql(location, max_connections, read_only))
        if not read_only:
            _connect_or_explain(location)
            try:
                upgrade(database.connection(), "postgresql")
                _check_collation()
            finally:
                database.close()
        return
    file = Path(location).expanduser().resolve()
    if read_only:  # mode=ro: no write of any kind, not even a checkpoint of the WAL when the last reader closes
        _bind_sqlite(
            f"file:{quote(str(file))}?mode=ro", max_connections, _read_only(sqlite_pragmas(synchronous)), uri=True
        )
        return
    file.parent.mkdir(parents=True, exist_ok=True)
    for own in (file, Path(f"{file}-wal"), Path(f"{file}-shm")):
        if own == file or own.exists():
            private_file(own)
    hold_service_lock(file)
    _bind_sqlite(location, max_connections, sqlite_pragmas(synchronous))
    with database.connection_context():
        conn = database.connection()
        current = schema_version(conn)
        if backup_dir is not None and current is not None and current < SCHEMA_VERSION:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            copy = backup(file, backup_dir / f"{file.stem}-v{current}-before-upgrade-{stamp}.db")
            log.warning("schema upgrade from version %d: a copy of the database is at %s", current, copy.path)
        upgrade(conn)


def _bind_sqlite(location: str, max_connections: int, pragmas: list[tuple[str, object]], uri: bool = False) -> None:
    database.initialize(
        PooledSqliteDatabase(
            location,
            max_connections=max_connections,
            stale_timeout=300,
            pragmas=pragmas,
            check_same_thread=False,
            uri=uri,
        )
    )


def _read_only(pragmas: list[tuple[str, object]]) -> list[tuple[str, object]]:
    """Pragmas of a reader that writes nothing: not even the journal mode of a file in another (a backup's DELETE)."""
    return [(name, value) for name, value in pragmas if name != "journal_mode"] + [("query_only", 1)]


class _PostgreSQL(PooledPostgresqlDatabase):
    """A pool whose connections read NUMERIC (what SUM of integers gives) as SQLite would answer: int or float."""

    def _connect(self) -> Any:
        from psycopg2.extensions import new_type, register_type

        conn = super()._connect()
        register_type(new_type((1700,), "NUMBER", _number), conn)
        return conn


def _number(value: str | None, _cursor: Any) -> int | float | None:
    if value is None:
        return None
    try:  # a sum of integers, nearly always: int() is the cheap test (a query may decode thousands of them)
        return int(value)
    except ValueError:
        return float(value)


def _connect_or_explain(url: str) -> None:
    """The first connection: a server that is down, a database or role it lacks, fails with the reason."""
    try:
        database.connect()
    except (OperationalError, InterfaceError) as exc:
        raise CannotOpen(url, exc) from None


# A session that waits this long for its next statement inside a transaction is ended by the server: a
# host that stopped mid-transaction (a power cut, a network partition) would otherwise keep the write
# lock, and every host's writes waiting, until TCP gives up on it (two hours by default on Linux).
# The service's own transactions never wait between statements for more than moments.
IDLE_TRANSACTION_SECONDS = 60


def _postgresql(url: str, max_connections: int, read_only: bool) -> PooledPostgresqlDatabase:
    """A pool on the server the URL names; every transaction commits synchronously (ack = durable)."""
    from psycopg2 import ProgrammingError
    from psycopg2.extensions import parse_dsn

    try:
        params: dict[str, Any] = parse_dsn(url)
    except ProgrammingError as exc:  # not a URL libpq can read: "invalid dsn: ..."
        raise CannotOpen(url, exc) from None
    name = params.pop("dbname", None) or params.get("user") or "postgres"
    # The idle limit first, so that a URL's own options may change it; synchronous commits stay.
    idle = f"-c idle_in_transaction_session_timeout={IDLE_TRANSACTION_SECONDS * 1000}"
    options = [idle, params.pop("options", ""), "-c synchronous_commit=on"]
    if read_only:
        options.append("-c default_transaction_read_only=on")
    params["options"] = " ".join(option for option in options if option)
    params.setdefault("connect_timeout", "10")
    params.setdefault("application_name", "weather_metrics")
    return _PostgreSQL(name, max_connections=max_connections, stale_timeout=300, **params)


def _check_collation() -> None:
    """Warn when text sorts by language rules: lists would come out in another order than on SQLite."""
    by_code_point = database.execute_sql("SELECT 'B' < 'a' AND 'Z' < '_' AND '_' < 'a'").fetchone()[0]
    if not by_code_point:
        log.warning(
            "the database sorts text by language rules, not by code point as SQLite does: lists may "
            "come out in another order; create the database with --locale=C.UTF-8 (docs/storage.md)"
        )


def _release_pool() -> None:
    """Drop the pool's connections before binding it to another database (or the same one again).

    Idle connections are closed. Those in use belong to the threads of an app built earlier in
    this process (tests build several): closing one while its thread runs a statement crashes
    the interpreter, so they are forgotten instead, left to their threads, and closed when those
    threads end. The pool never hands them out again, so no new connection reaches the old file.
    """
    pool = database.obj
    pool.close()
    with pool._pool_lock:  # noqa: SLF001 - the pool has no call to forget a connection
        pool.close_idle()
        pool._in_use.clear()  # noqa: SLF001
        pool._pool_available.notify_all()  # noqa: SLF001


def reconnect() -> None:
    """Give this thread a fresh connection after a failure that may have been the connection's own.

    A background loop holds one connection for its life: after a PostgreSQL restart (or a
    dropped backend) every statement on it fails until it is replaced. The pool discards a
    dead one when it comes back and checks the one it hands out.
    """
    try:
        if not database.is_closed():
            database.close()
        database.connect()
    except Exception:  # noqa: BLE001 - the next step fails, reports it, and comes here again
        log.warning("reconnecting to the database failed", exc_info=True)


def ping() -> bool:
    """True when the database answers a query."""
    try:
        database.execute_sql("SELECT 1 FROM schema_version LIMIT 1").fetchone()
        return True
    except Exception:  # noqa: BLE001 - any failure means the database is unusable
        return False


def pool_status() -> dict[str, int]:
    """Open, idle and waiting connections of the pool."""
    in_use = len(database.obj._in_use)  # noqa: SLF001 - the pool has no public counters
    idle = len(database.obj._connections)  # noqa: SLF001
    return {"total_connections": in_use + idle, "idle_connections": idle, "waiting_count": 0}


# On PostgreSQL, the key of the advisory lock a write transaction holds (any constant of ours).
WRITE_LOCK = 0x776D5F7772  # "wm_wr"


@contextmanager
def _locked_transaction() -> Iterator[Any]:
    with database.atomic() as transaction:
        database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
        yield transaction


def write_transaction():  # type: ignore[no-untyped-def]
    """A write transaction that holds the database's write lock from BEGIN, so writers take turns.

    On SQLite, `BEGIN IMMEDIATE` takes the write lock at once, so the transaction never fails
    mid-way. On PostgreSQL, an advisory lock does the same across processes and hosts: raw
    rows get their ids in commit order, which readers that keep their place by id rely on.
    """
    if is_postgresql():
        return _locked_transaction()
    return database.atomic(lock_type="IMMEDIATE")


class FlagField(IntegerField):
    """A yes/no column stored as 0 or 1 on both backends (an INTEGER in SQLite, a BIGINT in PostgreSQL)."""

    def db_value(self, value: Any) -> Any:
        return None if value is None else int(bool(value))

    def python_value(self, value: Any) -> Any:
        return None if value is None else bool(value)


class BaseModel(Model):
    class Meta:
        database = database
        legacy_table_names = False
