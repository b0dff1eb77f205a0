"""schema.sql and the peewee models agree; the schema applies idempotently and is versioned."""

from __future__ import annotations

import sqlite3

import pytest

from tests import databases
from tests.support import ROOT
from weather_metrics.store.db import database, execute, open_database
from weather_metrics.store.events import Event, Session
from weather_metrics.store.migrate import SCHEMA_VERSION
from weather_metrics.store.models import ALL_MODELS

HISTORY = ROOT / "tests" / "schema_history"


def table_info(path, table: str) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"PRAGMA table_info({table})").fetchall()


def tables(path) -> set[str]:
    with sqlite3.connect(path) as conn:
        # sqlite_sequence is SQLite's own (AUTOINCREMENT keeps its counters there).
        rows = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
    return {name for (name,) in rows}


@pytest.fixture
def fresh(tmp_path):
    path = tmp_path / "schema.db"
    open_database(str(path))
    yield path
    database.close_all()


@databases.sqlite_only
def test_every_table_but_schema_version_has_a_model(fresh):
    assert tables(fresh) == {m._meta.table_name for m in ALL_MODELS} | {"schema_version"}


@databases.sqlite_only
@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_model_columns_match_schema(fresh, model):
    columns = [row[1] for row in table_info(fresh, model._meta.table_name)]
    assert sorted(columns) == sorted(f.column_name for f in model._meta.sorted_fields)


@databases.sqlite_only
@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_model_column_types_match_schema(fresh, model):
    declared = {row[1]: row[2] for row in table_info(fresh, model._meta.table_name)}
    expected = {f.column_name: database._field_types[f.field_type] for f in model._meta.sorted_fields}
    assert declared == expected


@databases.sqlite_only
@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_model_nullability_and_primary_key_match_schema(fresh, model):
    info = {row[1]: row for row in table_info(fresh, model._meta.table_name)}
    for field in model._meta.sorted_fields:
        _cid, _name, _type, notnull, _default, pk = info[field.column_name]
        key_fields = [f.column_name for f in model._meta.get_primary_keys()]
        in_key = field.column_name in key_fields
        assert bool(pk) == in_key, field.column_name
        if not in_key:  # SQLite leaves NOT NULL off primary-key columns it does not need it on
            assert bool(notnull) == (not field.null), field.column_name


def test_opening_twice_keeps_data_and_one_version_row(tmp_path):
    path = databases.location(tmp_path / "twice.db")
    open_database(path)
    with database.connection_context():
        Event.create(
            received_at=1,
            timestamp_hour=3600,
            version="1.0.0",
            tool="get_forecast",
            is_error=False,
            analytics_level="minimal",
        )
        Session.create(session_id="abc", last_seen=3600)
    database.close_all()

    open_database(path)
    with database.connection_context():
        assert [e.tool for e in Event.select()] == ["get_forecast"]
        assert Session.get_by_id("abc").last_seen == 3600
        rows = database.execute_sql("SELECT version FROM schema_version").fetchall()
    database.close_all()
    assert rows == [(SCHEMA_VERSION,)]


def set_version(path, version: int) -> None:
    """Write `version` into the schema_version of the database named by `path` (closed afterwards)."""
    open_database(databases.location(path))
    with database.connection_context():
        execute("UPDATE schema_version SET version = ?", (version,))
    database.close_all()


def test_newer_schema_version_refuses_to_open(tmp_path):
    path = tmp_path / "newer.db"
    set_version(path, SCHEMA_VERSION + 1)
    with pytest.raises(RuntimeError, match=rf"schema version {SCHEMA_VERSION + 1} is newer than this release"):
        open_database(databases.location(path))
    database.close_all()
    assert databases.rows(path, "SELECT version FROM schema_version") == [(SCHEMA_VERSION + 1,)]


def test_app_refuses_to_start_on_a_newer_database(tmp_path):
    from weather_metrics import create_app

    path = tmp_path / "newer.db"
    set_version(path, SCHEMA_VERSION + 5)
    with pytest.raises(RuntimeError, match="newer than this release"):
        create_app({"database": databases.location(path)})
    database.close_all()


def test_opening_another_file_uses_that_file(tmp_path):
    # Regression: open_database used to re-bind the pool without closing its connections, so the
    # next connection still read and wrote the previously opened file.
    first, second = tmp_path / "first.db", tmp_path / "second.db"
    open_database(databases.location(first))
    with database.connection_context():
        Session.create(session_id="from-first", last_seen=3600)
    # As a second create_app() in the same process does (every test using the app fixture).
    open_database(databases.location(second))
    try:
        with database.connection_context():
            sessions = [s.session_id for s in Session.select()]
            Session.create(session_id="from-second", last_seen=7200)
    finally:
        database.close_all()
    assert sessions == []
    assert databases.rows(second, "SELECT session_id FROM sessions") == [("from-second",)]
    assert databases.rows(first, "SELECT session_id FROM sessions") == [("from-first",)]


def test_rollup_statements_read_only_the_new_rows(app):
    """Every rollup statement searches the id range; none scans its raw table."""
    from weather_metrics.store.agents import AGENTS
    from weather_metrics.store.batches import compiled
    from weather_metrics.store.db import database, is_postgresql
    from weather_metrics.store.events import EVENTS
    from weather_metrics.store.productivity import PRODUCTIVITY

    with database.connection_context():
        statements = [s for kind in (EVENTS, AGENTS, PRODUCTIVITY) for s in compiled(kind).rollups(0, 10**12)]
        assert len(statements) == 13  # agents (with teams) and productivity: the events rollups are Totals
        for sql, params in statements:
            if not is_postgresql():
                plan = " | ".join(row[-1] for row in database.execute_sql("EXPLAIN QUERY PLAN " + sql, params))
                assert "SCAN t1" not in plan and "SCAN a" not in plan and "rowid>? AND rowid<?" in plan, plan
                continue
            with database.atomic() as transaction:
                # The tables are empty: without this, scanning one whole would cost as little.
                database.execute_sql("SET LOCAL enable_seqscan = off")
                lines = [row[0].strip() for row in database.execute_sql("EXPLAIN " + sql, params)]
                transaction.rollback()
            conditions = [line for line in lines if line.startswith("Index Cond:")]
            plan = " | ".join(lines)
            assert "Seq Scan" not in plan and conditions, plan
            ranges = [line for line in conditions if "(id > " in line and "(id <= " in line]
            # The new rows by id; a team's rollups also look up each row's user in team_members.
            assert len(ranges) == 1 and all(line in ranges or "(user_id = " in line for line in conditions), plan


def release_database(path, version: int) -> None:
    """A database as release `version` created it (tests/schema_history)."""
    with sqlite3.connect(path) as conn:
        conn.executescript((HISTORY / f"v{version}.sql").read_text())
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
    conn.close()


@databases.sqlite_only
def test_a_version_4_database_gains_the_export_lease_column_and_keeps_its_jobs(tmp_path):
    path = tmp_path / "v4.db"
    release_database(path, 4)
    with sqlite3.connect(path) as conn:  # as version 4 left it: report_jobs without heartbeat_at
        conn.execute("INSERT INTO organizations (id, name, created_at) VALUES ('o', 'O', 1)")
        conn.execute(
            "INSERT INTO users (id, organization_id, email, name, role, active, created_at, updated_at)"
            " VALUES ('u', 'o', 'a@o.test', 'A', 'admin', 1, 1, 1)"
        )
        conn.execute(
            "INSERT INTO report_jobs (id, organization_id, user_id, report_type, format, filters, status,"
            " progress, rows_written, attempts, created_at, expires_at)"
            " VALUES ('j', 'o', 'u', 'agents', 'csv', '{}', 'running', 40, 0, 1, 1, 99)"
        )
    open_database(str(path))
    database.close_all()
    with sqlite3.connect(path) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(report_jobs)")]
        assert columns[-1] == "heartbeat_at"
        assert conn.execute("SELECT status, heartbeat_at FROM report_jobs").fetchall() == [("running", None)]
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


@databases.sqlite_only
def test_a_version_5_database_gives_its_keys_the_ingest_scope_and_they_keep_working(tmp_path):
    """Keys made before scopes existed only ingested: after the upgrade they are ingest keys, still live."""
    from weather_metrics.accounts import organizations as accounts

    path = tmp_path / "v5.db"
    release_database(path, 5)
    secret = accounts.API_KEY_PREFIX + "made-by-release-5"
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO organizations (id, name, created_at) VALUES ('o', 'O', 1)")
        conn.execute(
            "INSERT INTO api_keys (id, organization_id, name, prefix, secret_hash, created_at)"
            " VALUES ('k', 'o', 'fleet', ?, ?, 1)",
            (secret[:11], accounts.hash_api_key(secret)),
        )
    conn.close()
    open_database(str(path))
    with database.connection_context():
        key = accounts.authenticate_api_key(secret)
        assert key is not None and (key.id, key.scope) == ("k", accounts.INGEST)
        assert accounts.api_key_view(accounts.list_api_keys("o")[0])["scope"] == "ingest"
    database.close_all()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    conn.close()


@databases.sqlite_only
def test_a_version_6_database_gets_each_tool_s_latency_histograms_from_the_raw_events_it_kept(tmp_path):
    """The upgrade to version 7 fills the per-tool histograms from the raw events; pruned days stay without."""
    from collections import Counter
    from datetime import UTC, datetime

    from weather_metrics.core.histogram import latency_bucket
    from weather_metrics.query import stats
    from weather_metrics.store.events import LATENCY_SPANS

    path = tmp_path / "v6.db"
    release_database(path, 6)
    hour = int(datetime.now(UTC).timestamp()) // 3600 * 3600
    # (hours ago, tool, response time): get_alerts has one event without a time.
    kept = [(1, "get_forecast", 100.0), (1, "get_forecast", 104.0), (2, "get_forecast", 2000.0)]
    kept += [(30, "get_forecast", 40.0), (3, "get_alerts", 50.0), (3, "get_alerts", None)]
    with sqlite3.connect(path) as conn:
        for ago, tool, took in kept:
            conn.execute(
                "INSERT INTO events (received_at, timestamp_hour, version, tool, is_error, analytics_level,"
                " response_time_ms, latency_bucket) VALUES (?, ?, '1.0.0', ?, 0, 'standard', ?, ?)",
                (hour, hour - ago * 3600, tool, took, None if took is None else latency_bucket(took)),
            )
        # What version 6 wrote beside them; and a day 200 days ago whose raw events were pruned.
        conn.execute(
            "INSERT INTO tool_hourly SELECT timestamp_hour, tool, COUNT(*), 0, COUNT(response_time_ms),"
            " COALESCE(SUM(response_time_ms), 0), 0, 0 FROM events GROUP BY 1, 2"
        )
        conn.execute("INSERT INTO latency_daily VALUES (?, 90, 7)", (hour // 86400 * 86400 - 200 * 86400,))
    conn.close()
    open_database(str(path))
    with database.connection_context():
        rows = database.execute_sql("SELECT day, tool, bucket, calls FROM tool_latency_daily").fetchall()
        spans = database.execute_sql("SELECT span, start, tool, bucket, calls FROM tool_latency_spans").fetchall()
        tools = {t["name"]: t["p95_ms"] for t in stats.tools("7d", datetime.now(UTC))["tools"]}
    database.close_all()
    expected = Counter(
        ((hour - ago * 3600) // 86400 * 86400, tool, latency_bucket(took)) for ago, tool, took in kept if took
    )
    assert {(day, tool, bucket): calls for day, tool, bucket, calls in rows} == dict(expected)
    by_span = Counter(
        (n, (hour - ago * 3600) // (n * 86400) * n * 86400, t, latency_bucket(took))
        for ago, t, took in kept
        if took
        for n in LATENCY_SPANS
    )
    assert {(n, start, tool, bucket): calls for n, start, tool, bucket, calls in spans} == dict(by_span)
    assert 200 * 86400 > hour - min(day for day, *_ in rows)  # nothing for the pruned day
    # get_forecast's four times: the nearest-rank p95 is the 4th, 2000 ms, read as its bucket's middle.
    assert tools == {"get_forecast": pytest.approx(2000.0, rel=0.025), "get_alerts": pytest.approx(50.0, rel=0.025)}
