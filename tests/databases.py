"""Where a test's database lives: a SQLite file, or a schema on the local PostgreSQL server.

Tests name their database by a file path (`tmp_path / "metrics.db"`) and pass
`location(path)` as the `database` setting. On SQLite (the default) that is the path. With
WEATHER_METRICS_TEST_BACKEND=postgresql (`make test-postgres`) it is a URL whose search_path
is a schema named after the path, in a database of this test process's own
(`weather_metrics_test_<pid>`, dropped when the run ends; one a killed run left behind is
dropped by the next). The same path always gives the same schema, so a test that reopens
"the file" reopens the schema. A test's schemas are dropped when it ends (conftest.py).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

BACKEND = os.environ.get("WEATHER_METRICS_TEST_BACKEND", "sqlite")
ON_POSTGRESQL = BACKEND == "postgresql"
SERVER = os.environ.get("WEATHER_METRICS_TEST_POSTGRESQL", "postgresql://postgres@127.0.0.1:5432")
PREFIX = "weather_metrics_test_"
# Each server a test starts holds up to `threads + 8` connections; two test processes run
# several at once (PostgreSQL's default is 100).
MAX_CONNECTIONS = 400

sqlite_only = pytest.mark.skipif(ON_POSTGRESQL, reason="about SQLite files themselves; PostgreSQL has its own tests")

_schemas: dict[str, Path] = {}  # the schemas this process made, and the path each stands for
_admin_connection: Any = None


def location(path: Path | str) -> str:
    """The `database` setting for a test database named by `path`."""
    return postgresql_location(path) if ON_POSTGRESQL else str(path)


def postgresql_location(path: Path | str) -> str:
    """A URL for a schema named after `path`, on either backend's run (tests of PostgreSQL itself)."""
    schema = schema_name(path)
    if schema not in _schemas:
        admin(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        _schemas[schema] = Path(path).resolve()
    return url(schema)


def schema_name(path: Path | str) -> str:
    return "db_" + hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()[:24]


def url(schema: str) -> str:
    return f"{SERVER}/{database_name()}?options=-csearch_path%3D{schema}"


def database_name() -> str:
    return f"{PREFIX}{os.getpid()}"


def copy(source: Path | str, target: Path | str) -> None:
    """Make the database named by `target` a copy of the one named by `source` (closed by now)."""
    if not ON_POSTGRESQL:
        shutil.copyfile(source, target)
        return
    from_schema, to_schema = schema_name(source), schema_name(target)
    drop(target)
    postgresql_location(target)
    admin(
        f"SET search_path = {to_schema}; "
        + Path(__file__).resolve().parents[1].joinpath("schema.postgresql.sql").read_text()
        + "; RESET search_path"
    )
    tables = [row[0] for row in admin_rows(f"SELECT tablename FROM pg_tables WHERE schemaname = '{from_schema}'")]
    statements = ["SET session_replication_role = replica"]  # rows arrive in any order: no foreign-key checks
    statements += [f"DELETE FROM {to_schema}.{table}" for table in tables]
    statements += [f"INSERT INTO {to_schema}.{table} SELECT * FROM {from_schema}.{table}" for table in tables]
    statements.append("SET session_replication_role = DEFAULT")
    admin("; ".join(statements))
    for table, column in admin_rows(
        "SELECT table_name, column_name FROM information_schema.columns "
        f"WHERE table_schema = '{to_schema}' AND is_identity = 'YES'"
    ):
        admin(
            f"SELECT setval(pg_get_serial_sequence('{to_schema}.{table}', '{column}'), "
            f"COALESCE((SELECT MAX({column}) FROM {to_schema}.{table}), 0) + 1, false)"
        )


def drop(path: Path | str) -> None:
    """Remove the database named by `path`."""
    schema = schema_name(path)
    if schema not in _schemas and not ON_POSTGRESQL:
        Path(path).unlink(missing_ok=True)
        return
    admin(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    _schemas.pop(schema, None)


def drop_under(folder: Path) -> None:
    """Drop the schemas of paths inside `folder` (a finished test's tmp_path); any still in use stay to the end."""
    for schema, path in list(_schemas.items()):
        if path.is_relative_to(folder):
            try:
                admin(f"SET lock_timeout = '2s'; DROP SCHEMA IF EXISTS {schema} CASCADE; RESET lock_timeout")
                _schemas.pop(schema, None)
            except Exception:  # noqa: BLE001 - a server still holds it; the database goes at the end
                admin("ROLLBACK; RESET lock_timeout")


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
    _schemas.clear()


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
