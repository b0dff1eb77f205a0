"""PostgreSQL's organization rollups are read from their primary keys alone (schema version 10).

A PostgreSQL table keeps rows in the order they were first written, so one user's rollup rows
lie scattered over it; each primary key INCLUDEs the figures summed, and the queries read the
index only. A database made at version 9 (tests/schema_history/postgresql/) gets the same keys.
"""

from __future__ import annotations

from contextlib import closing
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support import ROOT, seed_org
from tests.test_postgresql import fresh_schema_url, psycopg2_connect
from weather_metrics.core.times import zone
from weather_metrics.query import org_metrics
from weather_metrics.query.scope import Scope
from weather_metrics.query.windows import parse_window
from weather_metrics.store import db
from weather_metrics.store.migrate import SCHEMA_VERSION

HISTORY = ROOT / "tests" / "schema_history" / "postgresql"
ROLLUPS = [
    f"agent{who}_{kind}" for who in ("", "_user") for kind in ("hourly", "daily", "latency_daily", "latency_spans")
]


def definitions(url: str) -> dict[str, set[str]]:
    """Every constraint and index definition of the URL's schema, by table."""
    with closing(psycopg2_connect(url)) as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE connamespace = current_schema()::regnamespace "
            "UNION ALL SELECT tablename, regexp_replace(indexdef, ' ON \\S+ ', ' ON ') FROM pg_indexes "
            "WHERE schemaname = current_schema()"
        )
        out: dict[str, set[str]] = {}
        for table, definition in cursor.fetchall():
            out.setdefault(table.rsplit(".", 1)[-1], set()).add(definition)
        return out


def test_a_version_9_database_gets_the_same_keys_and_indexes_as_a_new_one(tmp_path):
    new = fresh_schema_url(tmp_path / "new.db")
    db.open_database(new)
    old = fresh_schema_url(tmp_path / "old.db")
    with closing(psycopg2_connect(old)) as conn, conn.cursor() as cursor:
        cursor.execute((HISTORY / "v9.sql").read_text())
        cursor.execute("INSERT INTO schema_version (version) VALUES (9)")
        cursor.execute(
            "INSERT INTO agent_user_daily (user_id, day, agent_name, success, calls, duration_sum) "
            "VALUES ('u', 86400, 'reviewer', 1, 3, 12.5)"
        )
        conn.commit()
    db.open_database(old)
    db.database.close_all()
    assert definitions(old) == definitions(new)
    with closing(psycopg2_connect(old)) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT user_id, day, agent_name, success, calls, duration_sum FROM agent_user_daily")
        assert cursor.fetchall() == [("u", 86400, "reviewer", 1, 3, 12.5)]
        cursor.execute("SELECT version FROM schema_version")
        assert cursor.fetchall() == [(SCHEMA_VERSION,)]


def explained(statements: list[tuple[str, Any]]) -> dict[str, str]:
    """The plan of each statement that reads an organization rollup, by table."""
    plans = {}
    with db.database.atomic() as transaction:
        # The tables are nearly empty: without these, reading one whole would cost as little.
        db.execute("SET LOCAL enable_seqscan = off")
        db.execute("SET LOCAL enable_bitmapscan = off")
        for sql, params in statements:
            table = sql.split(" FROM ", 1)[1].split()[0]
            if table in ROLLUPS:
                plans[table] = " | ".join(row[0].strip() for row in db.execute("EXPLAIN " + sql, params))
        transaction.rollback()
    return plans


@pytest.mark.parametrize("scope", ["organization", "team"])
def test_organization_queries_read_the_rollups_from_their_keys_alone(make_app, tmp_path, monkeypatch, scope):
    app = make_app(database=fresh_schema_url(tmp_path / "pg.db"))
    people = seed_org(app, "Keys")
    org_id = people["admin"].user.organization_id
    users = None if scope == "organization" else frozenset({people["developer"].user.id, people["manager"].user.id})
    statements: list[tuple[str, Any]] = []
    run = db.execute

    def recorded(sql: str, params: Any = ()) -> Any:
        statements.append((sql, params))
        return run(sql, params)

    monkeypatch.setattr(org_metrics, "execute", recorded)
    now = datetime(2026, 6, 30, 12, tzinfo=UTC)
    with db.database.connection_context():
        # Paris days start inside UTC days: the hourly rollups are read too.
        window = parse_window("2026-03-30", "2026-06-29", "day", zone("Europe/Paris"), now, 400)
        org_metrics.agent_metrics(Scope(org_id, users, None), window)
        plans = explained(statements)
    tables = {name for name in ROLLUPS if ("_user_" in name) == (scope == "team")}
    assert set(plans) == tables
    for table, plan in plans.items():
        assert "Index Only Scan" in plan and "Index Scan" not in plan.replace("Index Only Scan", ""), (table, plan)
