"""Where a test's database lives: a SQLite file, or a schema on the local PostgreSQL server.

Tests name their database by a file path (`tmp_path / "metrics.db"`) and pass
`location(path)` as the `database` setting. On SQLite (the default) that is the path. With
WEATHER_METRICS_TEST_BACKEND=postgresql (`make test-postgres`) it is a URL whose search_path
is a schema standing for the path, in a database of this test process's own
(`weather_metrics_test_<pid>`, dropped when the run ends; one a killed run left behind is
dropped by the next). The same path gives the same schema for as long as its test runs, so
a test that reopens "the file" reopens the schema. When a test ends (conftest.py), its
schemas are kept as spares for later tests, emptied when taken.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

from weather_metrics.store.db import pyformat

BACKEND = os.environ.get("WEATHER_METRICS_TEST_BACKEND", "sqlite")
ON_POSTGRESQL = BACKEND == "postgresql"
SERVER = os.environ.get("WEATHER_METRICS_TEST_POSTGRESQL", "postgresql://postgres@127.0.0.1:5432")
PREFIX = "weather_metrics_test_"
# Each server a test starts holds up to `threads + 8` connections; two test processes run
# several at once (PostgreSQL's default is 100).
MAX_CONNECTIONS = 400

sqlite_only = pytest.mark.skipif(ON_POSTGRESQL, reason="about SQLite files themselves; PostgreSQL has its own tests")

_paths: dict[Path, str] = {}  # the schema standing for each path in use
_spare: list[str] = []  # schemas at the current version whose tests ended: emptied when taken again
_made = 0  # schemas made by this process
_admin_connection: Any = None
SCHEMA_SQL = Path(__file__).resolve().parents[1] / "schema.postgresql.sql"


def location(path: Path | str) -> str:
    """The `database` setting for a test database named by `path`."""
    return postgresql_location(path) if ON_POSTGRESQL else str(path)


def files_beside(path: Path | str) -> dict[str, str]:
    """Settings that keep a service's export files beside the database named by `path`, on either backend.

    On SQLite they go beside the file by default. For a PostgreSQL URL the default is the
    working directory, which every test (and both test processes) would share: one
    service's sweep would delete another's files.
    """
    return {"export_dir": str(Path(path).parent / "exports")} if ON_POSTGRESQL else {}


def postgresql_location(path: Path | str, fresh: bool = False) -> str:
    """A URL for the schema standing for `path`, on either backend's run (tests of PostgreSQL itself).

    A path new to this process gets an emptied spare schema (one a finished test left,
    at the current version: emptying its tables is much cheaper than creating them), or
    with `fresh`, or when there is none, a new schema without tables.
    """
    key = Path(path).resolve()
    schema = _paths.get(key)
    if schema is None:
        schema = _paths[key] = _take_spare() if _spare and not fresh else _new_schema()
    return url(schema)


def url(schema: str) -> str:
    return f"{SERVER}/{database_name()}?options=-csearch_path%3D{schema}"


def database_name() -> str:
    return f"{PREFIX}{os.getpid()}"


def copy(source: Path | str, target: Path | str) -> None:
    """Make the database named by `target` a copy of the one named by `source` (closed by now)."""
    if not ON_POSTGRESQL:
        shutil.copyfile(source, target)
        return
    postgresql_location(source)
    postgresql_location(target)
    from_schema, to_schema = _paths[Path(source).resolve()], _paths[Path(target).resolve()]
    if not _tables(to_schema):
        admin(f"SET search_path = {to_schema}; {SCHEMA_SQL.read_text()}; RESET search_path")
    tables, identities = _shape(from_schema)
    statements = ["SET session_replication_role = replica"]  # rows arrive in any order: no foreign-key checks
    statements += [f"DELETE FROM {to_schema}.{table}" for table in tables]
    statements += [f"INSERT INTO {to_schema}.{table} SELECT * FROM {from_schema}.{table}" for table in tables]
    statements += [  # identity columns go on after the rows copied in
        f"SELECT setval(pg_get_serial_sequence('{to_schema}.{table}', '{column}'), "
        f"COALESCE((SELECT MAX({column}) FROM {to_schema}.{table}), 0) + 1, false)"
        for table, column in identities
    ]
    statements.append("SET session_replication_role = DEFAULT")
    admin("; ".join(statements))


HISTORY = Path(__file__).resolve().parent / "schema_history"


def at_version(path: Path | str, version: int, statements: Any = ()) -> str:
    """A database named by `path` as release `version` created it (tests/schema_history) on the run's backend,
    with `statements` ((sql written with `?`, [params, ...]) pairs) run in it; its `database` setting."""
    steps = [("INSERT INTO schema_version (version) VALUES (?)", [(version,)]), *statements]
    if not ON_POSTGRESQL:
        with closing(sqlite3.connect(path)) as conn:
            conn.executescript((HISTORY / f"v{version}.sql").read_text())
            for sql, params in steps:
                conn.executemany(sql, params)
            conn.commit()
        return str(path)
    import psycopg2

    location = postgresql_location(path, fresh=True)
    with closing(psycopg2.connect(location)) as conn, conn.cursor() as cursor:
        cursor.execute((HISTORY / "postgresql" / f"v{version}.sql").read_text())
        for sql, params in steps:
            cursor.executemany(pyformat(sql), params)
        conn.commit()
    return location


def rows(path: Path | str, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
    """What `sql` (written with `?` placeholders) answers, read through a connection of its own: committed rows only."""
    if not ON_POSTGRESQL:
        conn = sqlite3.connect(path)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()
    import psycopg2

    conn = psycopg2.connect(location(path))
    try:
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute(pyformat(sql), params)
            return list(cursor.fetchall()) if cursor.description else []
    finally:
        conn.close()


@contextmanager
def holding_write_lock(path: Path | str) -> Iterator[None]:
    """The database's write lock, held by a connection of its own, as the event writer holds it while it commits.

    On SQLite that is BEGIN IMMEDIATE; on PostgreSQL, the advisory lock write_transaction() takes.
    """
    if not ON_POSTGRESQL:
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    import psycopg2

    from weather_metrics.store.db import WRITE_LOCK

    holder = psycopg2.connect(location(path))
    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
        yield
    finally:
        holder.rollback()
        holder.close()


def release_under(folder: Path) -> None:
    """A finished test's schemas (those of paths in its tmp_path) become spares, or go."""
    for path, schema in list(_paths.items()):
        if path.is_relative_to(folder):
            del _paths[path]
            if _current(schema):
                _spare.append(schema)
            else:
                _drop(schema)


def _new_schema() -> str:
    global _made
    _made += 1
    schema = f"db_{_made}"
    admin(f"CREATE SCHEMA {schema}")
    return schema


def _take_spare() -> str:
    """A spare schema with its tables emptied as a new database has them; a new one if it is still in use.

    One round trip: a spare holds exactly the tables of schema.postgresql.sql (`_current`), so
    their names and identity columns are the same for every spare and are looked up once.
    """
    schema = _spare.pop()
    tables, identities = _shape(schema)
    first_rows = re.findall(r"INSERT INTO \w+[^;]*;", SCHEMA_SQL.read_text())  # data_versions, span_folds
    assert len(first_rows) >= 2, "schema.postgresql.sql no longer seeds data_versions and span_folds"
    statements = ["SET lock_timeout = '2s'", "SET session_replication_role = replica"]
    statements += [f"DELETE FROM {schema}.{table}" for table in tables if table != "schema_version"]
    statements += [f"SET search_path = {schema}", *first_rows, "RESET search_path"]
    statements += [f"SELECT setval(pg_get_serial_sequence('{schema}.{t}', '{c}'), 1, false)" for t, c in identities]
    statements += ["SET session_replication_role = DEFAULT", "RESET lock_timeout"]
    try:
        admin("; ".join(statements))
    except Exception:  # noqa: BLE001 - a server of an earlier test still holds a lock: leave it
        admin("ROLLBACK; RESET ALL")
        _drop(schema)
        return _new_schema()
    return schema


_shapes: dict[str, tuple[list[str], list[tuple[str, str]]]] = {}  # schema file text -> tables, identity columns


def _shape(schema: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The tables of a current schema and its identity columns (table, column), read from `schema` once."""
    text = SCHEMA_SQL.read_text()
    if text not in _shapes:
        identities = admin_rows(
            "SELECT table_name, column_name FROM information_schema.columns "
            f"WHERE table_schema = '{schema}' AND is_identity = 'YES' ORDER BY table_name"
        )
        _shapes[text] = (sorted(_tables(schema)), [(table, column) for table, column in identities])
    return _shapes[text]


def _tables(schema: str) -> list[str]:
    return [row[0] for row in admin_rows(f"SELECT tablename FROM pg_tables WHERE schemaname = '{schema}'")]


def _current(schema: str) -> bool:
    """Whether the schema holds this release's tables, every one of them (a test may have dropped one)."""
    from weather_metrics.store.migrate import SCHEMA_VERSION

    try:
        version = admin_rows(f"SELECT MAX(version) FROM {schema}.schema_version")
    except Exception:  # noqa: BLE001 - no such table: an empty schema, or a test's broken one
        admin("ROLLBACK")
        return False
    tables = set(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", SCHEMA_SQL.read_text()))
    return version == [(SCHEMA_VERSION,)] and set(_tables(schema)) == tables


def _drop(schema: str) -> None:
    try:
        admin(f"SET lock_timeout = '2s'; DROP SCHEMA IF EXISTS {schema} CASCADE; RESET lock_timeout")
    except Exception:  # noqa: BLE001 - a server still holds it; the database goes at the end of the run
        admin("ROLLBACK; RESET ALL")


def admin(sql: str) -> None:
    with _admin().cursor() as cursor:
        cursor.execute(sql)


def admin_rows(sql: str) -> list[tuple[Any, ...]]:
    with _admin().cursor() as cursor:
        cursor.execute(sql)
        return list(cursor.fetchall())


def _admin() -> Any:
    """This process's own connection to its own database, made (and the server started) on first use."""
    global _admin_connection
    if _admin_connection is None:
        import psycopg2

        server = _connect_server()
        server.autocommit = True
        with server.cursor() as cursor:
            cursor.execute("SHOW max_connections")
            if int(cursor.fetchone()[0]) < MAX_CONNECTIONS:
                server = _allow_connections(server)
        with server.cursor() as cursor:
            cursor.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (PREFIX + "%",))
            for (name,) in cursor.fetchall():
                if name != database_name() and not _alive(name):
                    cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cursor.execute(f'DROP DATABASE IF EXISTS "{database_name()}" WITH (FORCE)')
            cursor.execute(f'CREATE DATABASE "{database_name()}"')
        server.close()
        _admin_connection = psycopg2.connect(f"{SERVER}/{database_name()}")
        _admin_connection.autocommit = True
    return _admin_connection


def _allow_connections(server: Any) -> Any:
    """Raise the server's max_connections (a restart): tests run servers of many threads at once."""
    with server.cursor() as cursor:
        cursor.execute(f"ALTER SYSTEM SET max_connections = {MAX_CONNECTIONS}")
    server.close()
    _restart_server()
    server = _connect_server()
    server.autocommit = True
    return server


def finish() -> None:
    """Drop this process's database at the end of the run."""
    global _admin_connection
    if _admin_connection is None:
        return
    _admin_connection.close()
    _admin_connection = None
    server = _connect_server()
    server.autocommit = True
    with server.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{database_name()}" WITH (FORCE)')
    server.close()
    _paths.clear()
    _spare.clear()


def _alive(name: str) -> bool:
    """Whether the test process a database was made for still runs (on this machine)."""
    try:
        os.kill(int(name.removeprefix(PREFIX)), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _restart_server(action: str = "restart") -> None:
    listed = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=False).stdout
    for version, cluster, *_ in (line.split() for line in listed.splitlines() if line.strip()):
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, cluster, action], check=False, timeout=120
        )


def _connect_server() -> Any:
    """A connection to the server's `postgres` database; starts the server when it is down."""
    import psycopg2

    try:
        return psycopg2.connect(f"{SERVER}/postgres", connect_timeout=5)
    except psycopg2.OperationalError:
        _restart_server("start")
        deadline = time.monotonic() + 30
        while True:
            try:
                return psycopg2.connect(f"{SERVER}/postgres", connect_timeout=5)
            except psycopg2.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"PostgreSQL at {SERVER} is down and could not be started; "
                        "WEATHER_METRICS_TEST_BACKEND=postgresql needs it"
                    ) from exc
                time.sleep(0.5)
