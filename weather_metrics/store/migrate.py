"""Schema versions: a new database gets schema.sql; an older one runs the numbered migrations.

`migrations/NNNN_name.sql` takes a database from version NNNN-1 to NNNN, in one transaction
together with its new version number, so an upgrade stops between two versions, never
inside one. Before the first migration, store/db.py takes a copy of the database (see
backup.py; `backup_before_upgrade`). schema.sql is always the newest schema in full: a test upgrades a
database of every earlier version (tests/schema_history/) and compares it with a new one.
Every schema change adds a migration and changes schema.sql to match.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from pathlib import Path

log = logging.getLogger(__name__)

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schema.sql"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
MIGRATION_NAME = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")


def migrations() -> dict[int, Path]:
    """Every migration by the version it brings a database to."""
    found = {}
    for path in MIGRATIONS_DIR.iterdir():
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


def upgrade(conn: sqlite3.Connection) -> int | None:
    """Bring the database open as `conn` (in autocommit mode) to SCHEMA_VERSION; the version it had (None: new).

    A database newer than this release is refused: its data may mean what this code cannot read.
    """
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
