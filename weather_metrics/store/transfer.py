"""Moving a SQLite database to PostgreSQL: copy every table into an empty database, then compare the two.

`copy_database` reads the SQLite file read-only, in one read transaction (one consistent
snapshot), and writes the PostgreSQL database in one transaction: a failure leaves the target
as empty as it was. Rows keep their ids; the identity sequences then go on after the highest
id copied (or SQLite's AUTOINCREMENT high-water mark, where higher), so new rows never collide.
Rows go by COPY in chunks of CHUNK_ROWS, streamed from SQLite: memory does not grow with a table.

`table_differences` compares the two, table by table: the number of rows, and a digest of
their contents that does not depend on row order (the sum of each row's hash), over every
column, with values read as the schema types them on both sides.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any
from urllib.parse import quote

from peewee import PeeweeException as PeeweeError

from weather_metrics.core.errors import ServiceError
from weather_metrics.store import db, pgtext
from weather_metrics.store.backup import lock_path
from weather_metrics.store.migrate import SCHEMA_VERSION, schema_version

CHUNK_ROWS = 10_000
NOT_COPIED = ("schema_version",)  # the target is migrated to the same version, not copied into
SEEDED = ("data_versions", "span_folds")  # a new database has its first rows: replaced by the source's
DIGEST_BITS = 128


class TransferError(ServiceError):
    """The copy or its check cannot go on: the message says why and what to do."""


@dataclass(frozen=True)
class Table:
    """A table of the schema: its columns in order, and how each column's values compare (integer, real, text)."""

    name: str
    columns: tuple[str, ...]
    kinds: tuple[str, ...]


@dataclass(frozen=True)
class TableCopied:
    name: str
    rows: int
    seconds: float


@dataclass(frozen=True)
class TableSummary:
    """A table's rows in number, and a digest of their contents in any order."""

    rows: int
    digest: int


@dataclass(frozen=True)
class Difference:
    """Something the target holds otherwise than the source: `subject` a table or a statistics question."""

    subject: str
    detail: str


def open_source(source: Path) -> sqlite3.Connection:
    """The SQLite file, read-only (mode=ro: nothing is written, not even a journal mode), at this release's version."""
    if not source.is_file():
        raise TransferError(f"{source} is not a file")
    conn = sqlite3.connect(f"file:{quote(str(source.resolve()))}?mode=ro", uri=True, isolation_level=None)
    try:
        version = schema_version(conn)
    except (sqlite3.DatabaseError, RuntimeError) as exc:
        conn.close()
        raise TransferError(f"{source} is not a database of this service: {exc}") from None
    if version != SCHEMA_VERSION:
        conn.close()
        raise TransferError(
            f"{source} has schema version {version}, this release {SCHEMA_VERSION}: start the service of this "
            "release once on it (it upgrades the file as it starts, keeping a copy first), stop it, then copy"
        )
    return conn


def source_tables(conn: sqlite3.Connection) -> list[Table]:
    """The source's tables in an order that puts every table after those it references."""
    names = [
        name
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        if name not in NOT_COPIED
    ]
    order = TopologicalSorter(
        {name: sorted({row[2] for row in conn.execute(f"PRAGMA foreign_key_list({name})")}) for name in sorted(names)}
    )
    tables = []
    for name in order.static_order():
        info = conn.execute(f"PRAGMA table_info({name})").fetchall()
        tables.append(Table(name, tuple(row[1] for row in info), tuple(_kind(row[2]) for row in info)))
    return tables


def _kind(declared: str) -> str:
    """SQLite's affinity of a declared column type (sqlite.org/datatype3.html), as far as this schema needs."""
    declared = declared.upper()
    if "INT" in declared:
        return "integer"
    if any(word in declared for word in ("REAL", "FLOA", "DOUB")):
        return "real"
    return "text"


def normalised(row: Iterable[Any], kinds: tuple[str, ...]) -> tuple[Any, ...]:
    """A row's values as the schema types them, so SQLite's and PostgreSQL's compare equal (5 in a REAL column: 5.0)."""
    return tuple(_value(value, kind) for value, kind in zip(row, kinds, strict=True))


def _value(value: Any, kind: str) -> Any:
    if kind == "real" and isinstance(value, int):
        return float(value)
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@contextmanager
def service_stopped(source: Path) -> Iterator[None]:
    """Hold the source's service lock exclusively: no service writes to it (or starts on it) while the copy runs."""
    path = lock_path(source.resolve())
    if not path.exists():  # no service has ever served this file
        yield
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TransferError(
                f"a running service uses {source}: stop it first (what it wrote during the copy would be missed)"
            ) from None
        yield
    finally:
        os.close(fd)


def copy_database(
    source: Path, target: str, progress: Callable[[TableCopied], None] = lambda _: None
) -> list[TableCopied]:
    """Copy the SQLite file `source` into the empty PostgreSQL database `target` (migrated first); the tables copied."""
    if not db.is_url(target):
        raise TransferError(f"the target must be a postgresql:// URL; got {target!r}")
    with service_stopped(source):
        conn = open_source(source)
        try:
            _open_target(target)
            with db.database.connection_context():
                return _copy_all(conn, target, progress)
        finally:
            conn.close()


def _open_target(target: str) -> None:
    """Bind the database handle to the target, creating or migrating its schema as the service does at start."""
    import psycopg2

    try:
        db.open_database(target, max_connections=2)
    except db.CannotOpen as exc:  # its message already hides the password
        raise TransferError(str(exc)) from None
    except (RuntimeError, PeeweeError, psycopg2.Error) as exc:
        raise TransferError(str(db.CannotOpen(target, exc))) from None  # the same, without the password


def _copy_all(conn: sqlite3.Connection, target: str, progress: Callable[[TableCopied], None]) -> list[TableCopied]:
    copied = []
    conn.execute("BEGIN")  # one read snapshot for every table
    try:
        tables = source_tables(conn)
        with db.write_transaction():  # holds the write lock: a service started on the target waits
            _check_target(tables, target)
            for table in tables:
                started = time.monotonic()
                rows = _copy_table(conn, table)
                copied.append(TableCopied(table.name, rows, time.monotonic() - started))
                progress(copied[-1])
            _restart_sequences(conn)
    finally:
        conn.execute("COMMIT")
    return copied


def _check_target(tables: list[Table], target: str) -> None:
    """Refuse a target holding any row (beyond a new database's first ones) or another shape of table."""
    found = _target_columns()
    for table in tables:
        if found.get(table.name) != table.columns:
            raise TransferError(
                f"table {table.name} has other columns in {db_name(target)} than in the source: "
                f"{found.get(table.name)} against {table.columns}"
            )
    for table in tables:
        if table.name not in SEEDED and db.execute(f"SELECT 1 FROM {table.name} LIMIT 1").fetchone():
            raise TransferError(
                f"the target database is not empty: table {table.name} holds rows. "
                "Copy into a new, empty database (docs/storage.md)"
            )


def _target_columns() -> dict[str, tuple[str, ...]]:
    rows = db.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
    ).fetchall()
    found: dict[str, tuple[str, ...]] = {}
    for table, column in rows:
        found[table] = (*found.get(table, ()), column)
    return found


def db_name(target: str) -> str:
    """The target as the operator may see it in output: the URL without its password."""
    import psycopg2
    from psycopg2.extensions import make_dsn, parse_dsn

    try:
        params = parse_dsn(target)
    except psycopg2.Error:
        return "the target (an unreadable URL)"
    params.pop("password", None)
    return make_dsn(**params)


def _copy_table(conn: sqlite3.Connection, table: Table) -> int:
    if table.name in SEEDED:
        db.execute(f"DELETE FROM {table.name}")
    rows = conn.execute(f"SELECT {', '.join(table.columns)} FROM {table.name}")
    formats = [_copy_format(kind) for kind in table.kinds]
    count = 0
    while chunk := rows.fetchmany(CHUNK_ROWS):
        try:
            lines = ("\t".join([form(value) for form, value in zip(formats, row, strict=True)]) for row in chunk)
            db.copy_lines(table.name, table.columns, "\n".join(lines) + "\n")
        except Exception as exc:
            raise TransferError(f"table {table.name}: a row after the first {count} cannot be copied: {exc}") from exc
        count += len(chunk)
    return count


def _copy_format(kind: str) -> Callable[[Any], str]:
    """How a column's values are written for COPY: its usual type directly (nearly all), anything else normalised."""
    usual = {"integer": int, "real": float, "text": str}[kind]
    plain = repr if kind == "real" else (str if kind == "integer" else pgtext.copy_text)

    def form(value: Any) -> str:
        return plain(value) if type(value) is usual else pgtext.copy_text(_value(value, kind))

    return form


def _restart_sequences(conn: sqlite3.Connection) -> None:
    """Each identity column goes on after its highest id, or SQLite's AUTOINCREMENT mark where that is higher."""
    high_water = dict(conn.execute("SELECT name, seq FROM sqlite_sequence").fetchall()) if _has_sequences(conn) else {}
    for table, column in _identity_columns():
        highest = db.execute(f"SELECT MAX({column}) FROM {table}").fetchone()[0] or 0
        last = max(int(highest), int(high_water.get(table) or 0))
        db.execute("SELECT setval(pg_get_serial_sequence(?, ?), ?, ?)", (table, column, max(last, 1), last > 0))


def _has_sequences(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchone() is not None


def _identity_columns() -> list[tuple[str, str]]:
    return db.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND is_identity = 'YES' ORDER BY table_name"
    ).fetchall()


# --- the check --------------------------------------------------------------------------------------


def table_differences(source: Path, target: str) -> list[Difference]:
    """Every table whose rows differ between the SQLite file and the PostgreSQL database, in number or content."""
    conn = open_source(source)
    try:
        conn.execute("BEGIN")
        tables = source_tables(conn)
        theirs = {table.name: _summary(conn.execute(_select(table)), table) for table in tables}
        conn.execute("COMMIT")
    finally:
        conn.close()
    ours = _target_summaries(target, tables)
    found = []
    for table in tables:
        want, got = theirs[table.name], ours[table.name]
        if want.rows != got.rows:
            found.append(Difference(table.name, f"{want.rows} rows in the source, {got.rows} in the target"))
        elif want.digest != got.digest:
            found.append(Difference(table.name, f"the same {want.rows} rows in number, but their contents differ"))
    return found + _sequence_differences(target)


def _select(table: Table) -> str:
    return f"SELECT {', '.join(table.columns)} FROM {table.name}"


def _summary(rows: Iterable[Any], table: Table) -> TableSummary:
    count, total = 0, 0
    for row in rows:
        text = repr(normalised(row, table.kinds)).encode()
        total += int.from_bytes(hashlib.blake2b(text, digest_size=DIGEST_BITS // 8).digest(), "big")
        count += 1
    return TableSummary(count, total % (1 << DIGEST_BITS))


def _target_summaries(target: str, tables: list[Table]) -> dict[str, TableSummary]:
    """Each table's summary, read in one snapshot by server-side cursors (rows are streamed, not loaded)."""
    with _target_connection(target) as conn:
        found = {}
        for table in tables:
            with conn.cursor(name=f"check_{table.name}") as cursor:
                cursor.itersize = CHUNK_ROWS
                cursor.execute(_select(table))
                found[table.name] = _summary(cursor, table)
        return found


@contextmanager
def _target_connection(target: str) -> Iterator[Any]:
    """A read-only connection of its own, one REPEATABLE READ transaction; refused unless at this release's version."""
    import psycopg2

    try:
        conn = psycopg2.connect(target, connect_timeout=10, application_name="weather_metrics transfer check")
    except psycopg2.Error as exc:  # libpq may quote the password of a URL it cannot read
        raise TransferError(str(db.CannotOpen(target, exc))) from None
    try:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with conn.cursor() as cursor:
            cursor.execute("SELECT to_regclass('schema_version') IS NOT NULL")
            version = None
            if cursor.fetchone()[0]:
                cursor.execute("SELECT MAX(version) FROM schema_version")
                version = cursor.fetchone()[0]
        if version != SCHEMA_VERSION:
            raise TransferError(f"{db_name(target)} has schema version {version}, this release {SCHEMA_VERSION}")
        yield conn
    finally:
        conn.rollback()
        conn.close()


def _sequence_differences(target: str) -> list[Difference]:
    """Identity sequences that would hand out an id already in use."""
    found = []
    with _target_connection(target) as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND is_identity = 'YES' ORDER BY table_name"
        )
        for table, column in cursor.fetchall():
            cursor.execute(f"SELECT MAX({column}) FROM {table}")
            highest = cursor.fetchone()[0]
            cursor.execute(f"SELECT last_value, is_called FROM {_sequence(cursor, table, column)}")
            last, called = cursor.fetchone()
            following = last + 1 if called else last
            if highest is not None and following <= highest:
                detail = f"the next {column} would be {following}, already in use (up to {highest})"
                found.append(Difference(table, detail))
    return found


def _sequence(cursor: Any, table: str, column: str) -> str:
    cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", (table, column))
    return str(cursor.fetchone()[0])
