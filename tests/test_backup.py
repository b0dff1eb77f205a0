"""Backups while the service ingests, restores refused while it runs, and upgrades from every older schema."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests import databases
from tests.support import ROOT, TEST_JWT_SECRET, Server, http, make_event
from weather_metrics.store import backup as backups
from weather_metrics.store import migrate
from weather_metrics.store.db import database, open_database

HISTORY = ROOT / "tests" / "schema_history"
TOOLS = ("get_forecast", "get_alerts", "get_current_weather")


def flask(database_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`flask --app app ...` in a subprocess, as an operator runs it."""
    env = {
        **os.environ,
        "WEATHER_METRICS_DATABASE": str(database_path),
        "WEATHER_METRICS_JWT_SECRET": TEST_JWT_SECRET,
        "WEATHER_METRICS_CONFIG": os.devnull,
    }
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def shape(path: Path) -> dict[str, Any]:
    """Tables with their columns, and indexes with theirs: what a schema is, whatever its SQL text."""
    with sqlite3.connect(path) as conn:
        tables = [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        result: dict[str, Any] = {}
        for table in sorted(tables):
            columns = sorted(tuple(row[1:]) for row in conn.execute(f"PRAGMA table_info({table})"))
            indexes = {
                row[1]: (row[2], [c[2] for c in conn.execute(f"PRAGMA index_info({row[1]})")])
                for row in conn.execute(f"PRAGMA index_list({table})")
            }
            result[table] = (columns, indexes)
    conn.close()
    return result


def private(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


# --- upgrades ----------------------------------------------------------------------------------


def old_database(path: Path, version: int) -> None:
    """A database as release `version` created it (tests/schema_history), with an event in it."""
    with sqlite3.connect(path) as conn:
        conn.executescript((HISTORY / f"v{version}.sql").read_text())
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        conn.execute(
            "INSERT INTO events (received_at, timestamp_hour, version, tool, is_error, analytics_level)"
            " VALUES (1, 3600, '1.0.0', 'get_forecast', 0, 'minimal')"
        )
    conn.close()


@databases.sqlite_only
@pytest.mark.parametrize("version", range(1, migrate.SCHEMA_VERSION))
def test_every_older_schema_upgrades_to_the_new_one_with_a_backup_first(tmp_path, version):
    fresh, old, copies = tmp_path / "fresh.db", tmp_path / "old.db", tmp_path / "backups"
    open_database(str(fresh))
    old_database(old, version)
    before = shape(old)
    open_database(str(old), backup_dir=copies)
    database.close_all()
    assert shape(old) == shape(fresh)
    with sqlite3.connect(old) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(migrate.SCHEMA_VERSION,)]
        assert conn.execute("SELECT tool FROM events").fetchall() == [("get_forecast",)]
    conn.close()
    [copy] = copies.iterdir()
    assert copy.name.startswith(f"old-v{version}-before-upgrade-") and private(copy)
    assert shape(copy) == before and backups.check(copy).schema_version == version


def test_schema_sql_is_the_last_migration_s_schema():
    """Every migration in order, from the first release's schema, gives what schema.sql creates."""
    assert sorted(migrate.migrations()) == list(range(2, migrate.SCHEMA_VERSION + 1))
    assert {int(p.stem[1:]) for p in HISTORY.glob("v*.sql")} == set(range(1, migrate.SCHEMA_VERSION))


@databases.sqlite_only
def test_no_backup_when_the_setting_is_off_and_none_for_a_current_database(tmp_path):
    old = tmp_path / "old.db"
    old_database(old, migrate.SCHEMA_VERSION - 1)
    open_database(str(old), backup_dir=None)
    open_database(str(old), backup_dir=tmp_path / "copies")  # current now: nothing to copy
    database.close_all()
    assert not (tmp_path / "copies").exists()


@databases.sqlite_only
def test_a_failing_migration_leaves_the_database_at_its_version(tmp_path, monkeypatch):
    old = tmp_path / "old.db"
    old_database(old, migrate.SCHEMA_VERSION - 1)
    before = shape(old)
    broken = tmp_path / "migrations"
    broken.mkdir()
    for number, script in migrate.migrations().items():
        text = script.read_text()
        if number == migrate.SCHEMA_VERSION:
            text += "\nCREATE TABLE half_done (id INTEGER);\nALTER TABLE no_such_table ADD COLUMN x INTEGER;\n"
        (broken / script.name).write_text(text)
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", broken)
    with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
        open_database(str(old), backup_dir=None)
    database.close_all()
    assert shape(old) == before  # neither the new column nor the half_done table


@pytest.mark.skipif(not databases.ON_POSTGRESQL, reason="PostgreSQL's twin of the test above")
def test_a_failing_postgresql_migration_leaves_the_schema_at_its_version(tmp_path, monkeypatch):
    from psycopg2.errors import UndefinedTable

    path = tmp_path / "metrics.db"
    open_database(databases.location(path))
    database.close_all()
    later = migrate.SCHEMA_VERSION + 1
    broken = tmp_path / "migrations"
    broken.mkdir()
    (broken / f"{later:04d}_broken.sql").write_text(
        "ALTER TABLE events ADD COLUMN half_done BIGINT;\nCREATE TABLE half_done (id BIGINT);\n"
        "ALTER TABLE no_such_table ADD COLUMN x BIGINT;\n"
    )
    monkeypatch.setattr(migrate, "POSTGRESQL_MIGRATIONS_DIR", broken)
    monkeypatch.setattr(migrate, "SCHEMA_VERSION", later)
    with pytest.raises(UndefinedTable, match="no_such_table"):
        open_database(databases.location(path))
    database.close_all()
    assert databases.rows(path, "SELECT version FROM schema_version") == [(later - 1,)]
    found = "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = current_schema() AND {}"
    assert databases.rows(path, found.format("table_name = 'half_done'")) == [(0,)]
    assert databases.rows(path, found.format("column_name = 'half_done'")) == [(0,)]
    assert databases.rows(path, found.format("table_name = 'events'")) != [(0,)]


@databases.sqlite_only
def test_a_database_newer_than_the_release_or_not_the_service_s_is_refused(tmp_path):
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    conn.close()
    with pytest.raises(RuntimeError, match="not this service's"):
        open_database(str(other))
    database.close_all()


@databases.sqlite_only
def test_new_database_files_are_readable_by_their_owner_only(tmp_path):
    path = tmp_path / "new.db"
    open_database(str(path))
    with database.connection_context():
        database.execute_sql("SELECT 1").fetchall()
        files = [path, Path(f"{path}-wal"), Path(f"{path}-shm"), backups.lock_path(path)]
        assert all(file.exists() and private(file) for file in files), [oct(f.stat().st_mode) for f in files]
    database.close_all()
    loose = tmp_path / "loose.db"
    open_database(str(loose))
    database.close_all()
    loose.chmod(0o644)
    open_database(str(loose))  # an existing world-readable file is made private
    database.close_all()
    assert private(loose)


# --- backups and restores with a real server ------------------------------------------------------


def tool_counts(path: Path) -> Counter[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT tool, COUNT(*) FROM events GROUP BY tool").fetchall()
    conn.close()
    return Counter(dict(rows))


@databases.sqlite_only
def test_a_backup_taken_while_ingesting_restores_to_a_consistent_database(tmp_path):
    path = tmp_path / "live.db"
    server = Server(path).start()
    stop, sent = threading.Event(), [0]

    def ingest() -> None:
        while not stop.is_set():
            events = [make_event(tool=TOOLS[(sent[0] + n) % 3]) for n in range(50)]
            status, _, body = http("POST", server.url + "/v1/events", {"events": events})
            assert status == 200, body
            sent[0] += 50

    clients = [threading.Thread(target=ingest) for _ in range(2)]
    try:
        for client in clients:
            client.start()
        while sent[0] < 500:
            stop.wait(0.05)
        copy = tmp_path / "copy.db"
        done = flask(path, "backup", str(copy))
        assert done.returncode == 0, done.stderr
        assert "integrity checked" in done.stdout and private(copy)
        stop.wait(0.5)
        restore = flask(path, "restore", str(copy))  # the service still runs
        assert restore.returncode != 0 and "in use" in restore.stderr, (restore.stdout, restore.stderr)
    finally:
        stop.set()
        for client in clients:
            client.join()
        server.stop()
    in_copy = tool_counts(copy)
    assert 0 < sum(in_copy.values()) < sent[0]  # taken mid-way
    # The copy's raw events are the source's first ones, and its rollups agree with them.
    with sqlite3.connect(copy) as conn:
        last = conn.execute("SELECT MAX(id) FROM events").fetchone()[0]
    conn.close()
    with sqlite3.connect(path) as conn:
        prefix = Counter(dict(conn.execute("SELECT tool, COUNT(*) FROM events WHERE id <= ? GROUP BY tool", (last,))))
    conn.close()
    assert prefix == in_copy
    source = tool_counts(path)
    done = flask(path, "restore", str(copy))
    assert done.returncode == 0, done.stderr
    replaced = [p for p in tmp_path.iterdir() if p.name.startswith("live-replaced-") and p.suffix == ".db"]
    assert len(replaced) == 1 and tool_counts(replaced[0]) == source  # kept, with its WAL
    restored = Server(path).start()
    try:
        status, _, tools = http("GET", restored.url + "/v1/stats/tools?period=7d")
    finally:
        restored.stop()
    assert status == 200, tools
    served = {entry["name"]: entry["calls"] for entry in tools["tools"]}
    assert served == dict(in_copy)


@databases.sqlite_only
def test_restore_refuses_a_file_that_is_not_a_sound_backup(tmp_path):
    path = tmp_path / "db.db"
    open_database(str(path))
    database.close_all()
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 100)
    done = flask(path, "restore", str(junk))
    assert done.returncode != 0 and "not a database of this service" in done.stderr
    assert backups.check(path).schema_version == migrate.SCHEMA_VERSION  # untouched


# --- the systemd unit ------------------------------------------------------------------------------

UNIT = ROOT / "docs" / "weather-metrics.service"


def test_the_systemd_unit_runs_the_procfile_command():
    procfile = (ROOT / "Procfile").read_text().split("web:", 1)[1].split()
    [start] = [line for line in UNIT.read_text().splitlines() if line.startswith("ExecStart=")]
    command = start.removeprefix("ExecStart=").split()
    assert command[0] == "/opt/weather_metrics/.venv/bin/" + procfile[0] and command[1:] == procfile[1:]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_systemd_unit_is_valid(tmp_path):
    """systemd's own check, on a copy that points at this checkout (the unit names /opt paths)."""
    text = UNIT.read_text().replace("/opt/weather_metrics/.venv/bin", str(Path(sys.executable).parent))
    text = text.replace("/opt/weather_metrics", str(ROOT)).replace("User=weather-metrics", "User=root")
    text = text.replace("Group=weather-metrics", "Group=root")
    unit = tmp_path / "weather-metrics.service"
    unit.write_text(text)
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    problems = [line for line in (done.stdout + done.stderr).splitlines() if "weather-metrics.service" in line]
    assert done.returncode == 0 and not problems, done.stdout + done.stderr


@databases.sqlite_only
def test_an_early_version_3_database_without_the_export_and_webhook_tables_upgrades(tmp_path):
    """Version 3 gained report_jobs and the webhook tables after its first databases were made."""
    fresh, old = tmp_path / "fresh.db", tmp_path / "early.db"
    open_database(str(fresh))
    old_database(old, 3)
    with sqlite3.connect(old) as conn:
        for table in ("webhook_deliveries", "webhooks", "report_jobs"):
            conn.execute(f"DROP TABLE {table}")
    conn.close()
    open_database(str(old), backup_dir=None)
    database.close_all()
    assert shape(old) == shape(fresh)
