"""Schema versions: a new database gets the full schema; an older one runs the numbered migrations.

Each dialect has its own full schema and migrations: SQLite's schema.sql with migrations/,
PostgreSQL's schema.postgresql.sql with migrations/postgresql/ (PostgreSQL support began at
version 9, so its migrations start at 10). `NNNN_name.sql` takes a database from version
NNNN-1 to NNNN, in one transaction together with its new version number, so an upgrade
stops between two versions, never inside one. Before the first migration of a SQLite file,
store/db.py takes a copy of it (see backup.py; `backup_before_upgrade`). Each full schema is
always the newest in full: a test upgrades a SQLite database of every earlier version
(tests/schema_history/) and compares it with a new one, and tests/test_postgresql.py holds
the two dialects' schemas to the same tables. Every schema change adds a migration in both
dialects and changes both schemas to match.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schema.sql"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
POSTGRESQL_SCHEMA_PATH = SCHEMA_PATH.with_name("schema.postgresql.sql")
POSTGRESQL_MIGRATIONS_DIR = MIGRATIONS_DIR / "postgresql"
POSTGRESQL_FIRST_VERSION = 9  # the version schema.postgresql.sql was first written at
MIGRATION_NAME = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")


def migrations(folder: Path | None = None) -> dict[int, Path]:
    """Every migration in `folder` (SQLite's, MIGRATIONS_DIR, by default) by the version it brings a database to."""
    found = {}
    for path in (MIGRATIONS_DIR if folder is None else folder).iterdir():
        match = MIGRATION_NAME.fullmatch(path.name)
        if match:
            if int(match[1]) in found:  # branches merged with the same number: one would be skipped
                raise RuntimeError(f"two migrations bring the schema to version {int(match[1])}: rename one")
            found[int(match[1])] = path
    return dict(sorted(found.items()))


SCHEMA_VERSION = max(migrations())


def schema_version(conn: sqlite3.Connection) -> int | None:
    """The database's schema version; None for a file without tables (a new database)."""
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        return None
    if "schema_version" not in tables:
        raise RuntimeError("the database file holds tables but no schema_version: it is not this service's")
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    if row is None or row[0] is None:
        raise RuntimeError("the database's schema_version table is empty")
    return int(row[0])


def upgrade(conn: Any, dialect: str = "sqlite") -> int | None:
    """Bring the database open as `conn` (in autocommit mode) to SCHEMA_VERSION; the version it had (None: new).

    A database newer than this release is refused: its data may mean what this code cannot read.
    """
    if dialect == "postgresql":
        return _upgrade_postgresql(conn)
    current = schema_version(conn)
    if current is None:
        _run(conn, SCHEMA_PATH.read_text(), SCHEMA_VERSION)
        return None
    if current > SCHEMA_VERSION:
        raise RuntimeError(f"database schema version {current} is newer than this release ({SCHEMA_VERSION})")
    for version, script in migrations().items():
        if version > current:
            log.warning("upgrading the database schema to version %d (%s)", version, script.name)
            _run(conn, script.read_text(), version)
    return current


def _run(conn: sqlite3.Connection, script: str, version: int) -> None:
    """Run a schema script and record `version`, all in one transaction."""
    try:
        conn.executescript(
            f"BEGIN IMMEDIATE;\n{script}\n;DELETE FROM schema_version;"
            f"\nINSERT INTO schema_version (version) VALUES ({int(version)});\nCOMMIT;"
        )
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise


def _upgrade_postgresql(conn: Any) -> int | None:
    """`upgrade` on PostgreSQL (a psycopg2 connection in autocommit mode), in one transaction per step.

    An advisory lock keyed by the schema makes processes that start together take turns:
    the first creates or migrates, the others then find the schema current.
    """
    with conn.cursor() as cursor:
        cursor.execute("BEGIN")
        try:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext('weather_metrics schema ' || current_schema()))")
            current = _postgresql_version(cursor)
            if current is None:
                cursor.execute(POSTGRESQL_SCHEMA_PATH.read_text())
                _record(cursor, SCHEMA_VERSION)
            elif current > SCHEMA_VERSION:
                raise RuntimeError(f"database schema version {current} is newer than this release ({SCHEMA_VERSION})")
            else:
                for version, script in migrations(POSTGRESQL_MIGRATIONS_DIR).items():
                    if version > current:
                        log.warning("upgrading the database schema to version %d (%s)", version, script.name)
                        cursor.execute(script.read_text())
                        _record(cursor, version)
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
    return current


def _postgresql_version(cursor: Any) -> int | None:
    cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
    tables = {name for (name,) in cursor.fetchall()}
    if not tables:
        return None
    if "schema_version" not in tables:
        raise RuntimeError("the database schema holds tables but no schema_version: it is not this service's")
    cursor.execute("SELECT MAX(version) FROM schema_version")
    row = cursor.fetchone()
    if row is None or row[0] is None:
        raise RuntimeError("the database's schema_version table is empty")
    return int(row[0])


def _record(cursor: Any, version: int) -> None:
    cursor.execute("DELETE FROM schema_version")
    cursor.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
