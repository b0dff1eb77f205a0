"""The PostgreSQL backend against a real server at 127.0.0.1:5432 (user postgres, trust auth).

Each test works in a new schema of its own (tests/databases.py), on either backend's run.
Without a server that can be started, or without psycopg2, the tests skip; under
WEATHER_METRICS_TEST_STRICT=1 they fail instead.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests import databases
from tests.schema_shape import ASSIGNED, Table, postgresql_shape, report, shape_differences, sqlite_shape
from tests.support import ROOT, make_event
from weather_metrics.store import db
from weather_metrics.store.events import EVENT_COLUMNS
from weather_metrics.store.migrate import (
    POSTGRESQL_FIRST_VERSION,
    POSTGRESQL_MIGRATIONS_DIR,
    SCHEMA_VERSION,
    migrations,
)
from weather_metrics.store.pgtext import copy_text

# --- schema.postgresql.sql has the shape of schema.sql ------------------------------------------------

SQLITE_SCHEMA = ROOT / "schema.sql"
POSTGRESQL_SCHEMA = ROOT / "schema.postgresql.sql"


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("WEATHER_METRICS_TEST_STRICT"):
        pytest.fail(f"PostgreSQL tests need {reason}")
    pytest.skip(f"{reason}: PostgreSQL tests skipped (WEATHER_METRICS_TEST_STRICT=1 fails them instead)")


def fresh_schema_url(path: Path) -> str:
    """A URL for a new empty schema standing for `path` (tests/databases.py); skips without a server."""
    try:
        return databases.postgresql_location(path, fresh=True)
    except ImportError:
        unavailable("psycopg2 (the psycopg2-binary package, the PostgreSQL driver)")
    except RuntimeError as error:
        unavailable(str(error))


@pytest.fixture
def pg_schema(tmp_path: Path) -> Iterator[tuple[Any, str]]:
    """A connection to a new empty schema (on its search_path), and the schema's name."""
    import psycopg2

    conn = psycopg2.connect(fresh_schema_url(tmp_path / "parity.db"))
    with conn.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        schema = cursor.fetchone()[0]
    try:
        yield conn, schema
    finally:
        conn.rollback()
        conn.close()


def build_both(
    tmp_path: Path, pg_schema: tuple[Any, str], sqlite_extra: str = "", postgresql_extra: str = ""
) -> tuple[dict[str, Table], dict[str, Table]]:
    """Both schemas built, each then given its extra SQL, and read back: (SQLite, PostgreSQL)."""
    path = tmp_path / "schema.db"
    with closing(sqlite3.connect(path)) as sqlite:
        sqlite.executescript(SQLITE_SCHEMA.read_text() + sqlite_extra)
    conn, schema = pg_schema
    with conn.cursor() as cursor:
        cursor.execute(POSTGRESQL_SCHEMA.read_text())  # the whole file in one transaction
        conn.commit()
        if postgresql_extra:
            cursor.execute(postgresql_extra)
            conn.commit()
        return sqlite_shape(path), postgresql_shape(cursor, schema)


def test_postgresql_schema_matches_sqlite(tmp_path, pg_schema):
    sqlite, postgresql = build_both(tmp_path, pg_schema)
    assert len(sqlite) == SQLITE_SCHEMA.read_text().count("CREATE TABLE")  # every table was read
    differences = shape_differences(sqlite, postgresql)
    assert not differences, report(differences)


# A change to the PostgreSQL side, and every difference the comparison must then list.
ALTERATIONS = {
    "column": ("ALTER TABLE events DROP COLUMN country", "events: column country in SQLite only"),
    "index": ("DROP INDEX events_late", "events: index events_late in SQLite only"),
    "not-null": (
        "ALTER TABLE api_keys ALTER COLUMN name DROP NOT NULL",
        "api_keys.name: not null yes in SQLite, no in PostgreSQL",
    ),
    "type": (
        "ALTER TABLE events ALTER COLUMN parameters TYPE BYTEA USING NULL",
        "events.parameters: type TEXT in SQLite, bytea (PostgreSQL) in PostgreSQL",
    ),
    "default": (
        "ALTER TABLE organizations ALTER COLUMN time_zone SET DEFAULT 'GMT'",
        "organizations.time_zone: default 'UTC' in SQLite, 'GMT' in PostgreSQL",
    ),
    "identity": (
        "ALTER TABLE live_events ALTER COLUMN id DROP IDENTITY",
        f"live_events.id: default {ASSIGNED} in SQLite, none in PostgreSQL",
    ),
    "primary-key": (
        "ALTER TABLE tool_hourly DROP CONSTRAINT tool_hourly_pkey, ADD PRIMARY KEY (tool, hour)",
        "tool_hourly: primary key (hour, tool) in SQLite, (tool, hour) in PostgreSQL",
    ),
    "index-columns": (
        "DROP INDEX report_jobs_status; CREATE INDEX report_jobs_status ON report_jobs (created_at, status)",
        "report_jobs: index report_jobs_status: columns (status, created_at) in SQLite, (created_at, status) in"
        " PostgreSQL",
    ),
    "unique": ("ALTER TABLE users DROP CONSTRAINT users_email_key", "users: unique (email) in SQLite only"),
    "on-delete": (
        "ALTER TABLE team_members DROP CONSTRAINT team_members_team_id_fkey,"
        " ADD FOREIGN KEY (team_id) REFERENCES teams (id)",
        "team_members: foreign key (team_id) -> teams (id) on delete CASCADE in SQLite only",
        "team_members: foreign key (team_id) -> teams (id) on delete NO ACTION in PostgreSQL only",
    ),
}


@pytest.mark.parametrize("name", ALTERATIONS)
def test_schema_parity_check_can_fail(tmp_path, pg_schema, name):
    alteration, *expected = ALTERATIONS[name]
    differences = shape_differences(*build_both(tmp_path, pg_schema, postgresql_extra=alteration))
    assert differences == expected, report(differences)


def test_schema_parity_normalises_conditions_and_defaults(tmp_path, pg_schema):
    """What each catalog spells its own way (casts, parentheses, IN as = ANY) compares equal; a change does not."""
    index = (
        "CREATE INDEX report_jobs_waiting ON report_jobs (created_at DESC)"
        " WHERE status IN ('queued', 'running') AND heartbeat_at IS NULL;"
    )
    added = "ALTER TABLE alert_rules ADD COLUMN weight {} NOT NULL DEFAULT -2.5, ADD COLUMN rank {} DEFAULT -1;"
    sqlite_extra = index + added.format("REAL", "INTEGER").replace(", ADD", "; ALTER TABLE alert_rules ADD")
    same = shape_differences(
        *build_both(tmp_path, pg_schema, sqlite_extra, index + added.format("DOUBLE PRECISION", "BIGINT"))
    )
    assert not same, report(same)
    conn, schema = pg_schema
    with conn.cursor() as cursor:
        cursor.execute("DROP INDEX report_jobs_waiting; " + index.replace("'running'", "'failed'"))
        cursor.execute("ALTER TABLE alert_rules ALTER COLUMN rank SET DEFAULT 1")
        differences = shape_differences(sqlite_shape(tmp_path / "schema.db"), postgresql_shape(cursor, schema))
    assert differences == [
        "alert_rules.rank: default -1 in SQLite, 1 in PostgreSQL",
        "report_jobs: index report_jobs_waiting: where status in 'queued', 'running' and heartbeat_at is null"
        " in SQLite, status in 'queued', 'failed' and heartbeat_at is null in PostgreSQL",
    ], report(differences)


# --- The service on PostgreSQL: opening, migrating, committing -----------------------------------------


@pytest.fixture
def pg_url(tmp_path: Path) -> str:
    """A URL for an empty schema of this test's own (released when the test ends, see conftest.py)."""
    return fresh_schema_url(tmp_path / "pg.db")


def test_a_postgresql_url_gets_the_full_schema_at_the_current_version(make_app, pg_url):
    app = make_app(database=pg_url)
    assert db.is_postgresql()
    assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    tables = {row[0] for row in db.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
    assert {"events", "agent_executions", "organizations", "data_versions"} <= tables
    response = app.test_client().post("/v1/events", json={"events": [make_event()]})
    assert response.status_code == 200, response.get_json()
    assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1


def test_every_connection_commits_synchronously_whatever_the_url_asks(make_app, pg_url):
    make_app(database=pg_url + "%20-csynchronous_commit%3Doff")
    with db.database.connection_context():
        assert db.execute("SHOW synchronous_commit").fetchone()[0] == "on"


def test_processes_starting_together_migrate_once(tmp_path, pg_url):
    script = "import sys; from weather_metrics.store.db import open_database; open_database(sys.argv[1])"
    starts = [
        subprocess.Popen([sys.executable, "-c", script, pg_url], cwd=ROOT, stderr=subprocess.PIPE) for _ in range(4)
    ]
    for process in starts:
        _, errors = process.communicate(timeout=60)
        assert process.returncode == 0, errors.decode()
    with closing(psycopg2_connect(pg_url)) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT version FROM schema_version")
        assert cursor.fetchall() == [(SCHEMA_VERSION,)]


def test_a_newer_schema_is_refused(make_app, pg_url):
    make_app(database=pg_url)
    db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(RuntimeError, match="newer than this release"):
        db.open_database(pg_url)


def test_every_sqlite_migration_since_postgresql_support_has_a_postgresql_twin():
    later = {v: p.name for v, p in migrations().items() if v > POSTGRESQL_FIRST_VERSION}
    twins = {v: p.name for v, p in migrations(POSTGRESQL_MIGRATIONS_DIR).items()}
    assert twins == later


def test_a_full_disk_on_the_server_is_a_storage_error(make_app, pg_url):
    make_app(database=pg_url)
    with pytest.raises(Exception) as raised, db.database.connection_context():  # noqa: PT011 - any driver error
        db.execute("DO $$ BEGIN RAISE EXCEPTION 'could not extend file' USING ERRCODE = '53100'; END $$")
    assert isinstance(db.storage_error(raised.value), db.StorageFull)
    with pytest.raises(Exception) as other, db.database.connection_context():  # noqa: PT011
        db.execute("DO $$ BEGIN RAISE EXCEPTION 'something else' USING ERRCODE = '22012'; END $$")
    assert db.storage_error(other.value) is None


def test_sums_of_integers_read_as_sqlite_gives_them(make_app, pg_url):
    make_app(database=pg_url)
    with db.database.connection_context():
        total, mean, none = db.execute(
            "SELECT SUM(x), AVG(x), SUM(NULL::bigint) FROM (VALUES (1), (2)) AS v(x)"
        ).fetchone()
    assert (total, type(total)) == (3, int)
    assert (mean, type(mean)) == (1.5, float)
    assert none is None


def test_write_transactions_take_turns_across_connections(make_app, pg_url):
    make_app(database=pg_url)
    inside = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def first() -> None:
        with db.database.connection_context(), db.write_transaction():
            order.append("first begins")
            inside.set()
            release.wait(10)
            order.append("first commits")

    def second() -> None:
        inside.wait(10)
        with db.database.connection_context(), db.write_transaction():
            order.append("second begins")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    inside.wait(10)
    time.sleep(0.5)  # the second transaction is waiting on the lock by now
    assert order == ["first begins"]
    release.set()
    for thread in threads:
        thread.join(10)
    assert order == ["first begins", "first commits", "second begins"]


@pytest.mark.parametrize(("command", "tool"), [(["backup"], "pg_dump"), (["restore", "schema.sql"], "pg_restore")])
def test_backup_and_restore_name_the_postgresql_tools(make_app, pg_url, command, tool):
    app = make_app(database=pg_url)
    result = app.test_cli_runner().invoke(args=command)
    assert result.exit_code != 0
    assert tool in result.output


def psycopg2_connect(url: str) -> Any:
    import psycopg2

    return psycopg2.connect(url)


def test_the_writer_reconnects_when_the_server_drops_its_connection(make_app, pg_url):
    client = make_app(database=pg_url).test_client()
    assert client.post("/v1/events", json={"events": [make_event()]}).status_code == 200
    dropped = databases.admin_rows(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = 'weather_metrics'"
    )
    assert dropped and all(ok for (ok,) in dropped)
    response = client.post("/v1/events", json={"events": [make_event(), make_event()]})
    assert response.status_code == 200, response.get_json()
    with db.database.connection_context():
        assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 3


def test_a_database_sorting_by_language_rules_is_warned_about(make_app, tmp_path, caplog):
    name = f"{databases.database_name()}_icu"
    with closing(psycopg2_connect(f"{databases.SERVER}/postgres")) as server:
        server.autocommit = True
        with server.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
            cursor.execute(f"""CREATE DATABASE "{name}" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en'""")
        try:
            make_app(database=f"{databases.SERVER}/{name}").extensions["weather_metrics"].close()
            assert "sorts text by language rules" in caplog.text
            caplog.clear()
            make_app(database=databases.postgresql_location(tmp_path / "c.db", fresh=True))
            assert "sorts text by language rules" not in caplog.text
        finally:
            db.database.close_all()
            with server.cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("first", ["sqlite", "postgresql"])
def test_a_process_that_opens_either_backend_in_turn_writes_to_both(make_app, pg_url, tmp_path, first):
    """The writer's statements are compiled once per dialect: one backend's placeholders never reach the other."""
    locations = {"sqlite": str(tmp_path / "lite.db"), "postgresql": pg_url}
    for backend in (first, *(name for name in locations if name != first)):
        client = make_app(database=locations[backend]).test_client()
        response = client.post("/v1/events", json={"events": [make_event(), make_event()]})
        assert response.status_code == 200, (backend, response.get_json())
        with db.database.connection_context():
            assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 2, backend


def test_rows_copied_in_arrive_exactly_as_given(make_app, pg_url):
    make_app(database=pg_url)
    tricky = ["tab\there", "line\nbreak", "carriage\rreturn", "back\\slash", "\\N", "", "ünï ☃"]
    rows = [(text, f"h{n}", "{}", n * 10**10) for n, text in enumerate(tricky)]
    with db.database.connection_context(), db.write_transaction():
        db.copy_rows("idempotency_keys", ("key", "body_hash", "response", "created_at"), rows)
    with db.database.connection_context():
        stored = db.execute("SELECT key, body_hash, response, created_at FROM idempotency_keys").fetchall()
    assert sorted(stored) == sorted(rows)
    assert copy_text(None) == "\\N" and copy_text(0.1) == "0.1" and copy_text(True) == "1"


def test_columns_of_any_mix_of_values_are_copied_exactly(make_app, pg_url):
    """COPY text is made a column at a time, plain columns whole: each mix of types and NULLs comes back as given."""
    make_app(database=pg_url)
    width = len(EVENT_COLUMNS)
    base = [1_796_000_000, 1_795_996_400, "1.0.0", "get_forecast", 0, "standard", 12.5, 3, *([None] * (width - 8))]
    rows = []
    for n, text in enumerate(["plain", None, "tab\there", "back\\slash", "", "\\N", None, "line\nbreak"]):
        row = list(base)
        row[2] = text or f"v{n}"  # text needing escapes, no NULLs
        row[3] = "tool"  # plain text only
        row[8] = None if n % 2 else f"s{n}"  # plain text and NULLs
        row[11] = text  # text needing escapes and NULLs
        row[6] = None if n % 3 == 0 else n + 0.25  # floats and NULLs
        row[7] = None if n % 4 == 0 else n  # integers and NULLs
        rows.append(tuple(row))
    with db.database.connection_context(), db.write_transaction():
        db.copy_rows("events", EVENT_COLUMNS, rows)
    with db.database.connection_context():
        stored = db.execute(f"SELECT {', '.join(EVENT_COLUMNS)} FROM events ORDER BY id").fetchall()
    assert [tuple(row) for row in stored] == rows


def test_the_write_lock_of_a_session_gone_quiet_mid_transaction_is_freed(make_app, pg_url, monkeypatch):
    """A host that stops mid-transaction (power cut, network partition) leaves its session waiting for the next
    statement: the server ends it after IDLE_TRANSACTION_SECONDS, and with it the write lock every host needs."""
    monkeypatch.setattr(db, "IDLE_TRANSACTION_SECONDS", 2)
    client = make_app(database=pg_url).test_client()
    inside, release = threading.Event(), threading.Event()

    def gone_quiet() -> None:
        try:
            with db.database.connection_context(), db.write_transaction():
                inside.set()
                release.wait(60)
        except Exception:  # noqa: BLE001 - the server ended this session: what the test is about
            pass

    quiet = threading.Thread(target=gone_quiet)
    quiet.start()
    try:
        assert inside.wait(10)
        response = client.post("/v1/events", json={"events": [make_event()]})
        assert response.status_code == 200, response.get_json()  # committed while the quiet one still waits
    finally:
        release.set()
        quiet.join(30)
    with db.database.connection_context():
        assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1
