"""The agent rollups (daily sums, hourly totals, span histograms) equal what the raw executions give."""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from tests import databases
from weather_metrics.core.histogram import latency_bucket
from weather_metrics.query import org_metrics
from weather_metrics.query.scope import Scope
from weather_metrics.query.spans import day_spans, whole_days
from weather_metrics.query.windows import Window
from weather_metrics.store import db
from weather_metrics.store.agents import AGENTS, SPANS
from weather_metrics.store.batches import PendingBatch, write_batches
from weather_metrics.store.db import database, execute

HOUR, DAY = 3600, 86400
START = 1_767_225_600  # 2026-01-01, a multiple of 64 days plus some


def executions(rng: random.Random, count: int) -> list[tuple]:
    rows = []
    for _ in range(count):
        moment = START + rng.randrange(150 * DAY)
        duration = round(rng.lognormvariate(6, 1), 1)
        user = rng.choice(["u1", "u2", "u3", None])
        rows.append(
            ("org", "b", moment, float(moment), moment // HOUR * HOUR, None, user, user, rng.choice("abc"), "run",
             duration, latency_bucket(duration), int(rng.random() < 0.9), None, None)
        )  # fmt: skip
    return rows


RAW = {
    "agent_total_hourly": "SELECT organization_id, hour, success, COUNT(*), SUM(duration_ms)"
    " FROM agent_executions GROUP BY 1, 2, 3",
    "agent_daily": "SELECT organization_id, hour / 86400 * 86400, agent_name, success, COUNT(*), SUM(duration_ms)"
    " FROM agent_executions GROUP BY 1, 2, 3, 4",
    "agent_user_daily": "SELECT user_id, hour / 86400 * 86400, agent_name, success, COUNT(*), SUM(duration_ms)"
    " FROM agent_executions WHERE user_id IS NOT NULL GROUP BY 1, 2, 3, 4",
    **{
        table: " UNION ALL ".join(
            f"SELECT {owner}, {n}, hour / {n * DAY} * {n * DAY}, agent_name, success, latency_bucket, COUNT(*)"
            f" FROM agent_executions WHERE {owner} IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6"
            for n in SPANS
        )
        for table, owner in (("agent_latency_spans", "organization_id"), ("agent_user_latency_spans", "user_id"))
    },
}


FILLED_BY_8 = sorted(set(RAW) - {"agent_total_hourly"})  # agent_total_hourly came with version 13


def table_rows(run, table: str) -> list[tuple]:
    """The rollup's rows, as `run(sql)` (the app's `execute`, or a SQLite connection's) answers them."""
    return sorted(
        tuple(round(v, 6) if isinstance(v, float) else v for v in row) for row in run(f"SELECT * FROM {table}")
    )


def raw_rows(run, table: str) -> list[tuple]:
    return sorted(tuple(round(v, 6) if isinstance(v, float) else v for v in row) for row in run(RAW[table]))


@pytest.mark.parametrize("table", sorted(RAW))
def test_the_writer_s_rollups_equal_the_raw_rows(app, table):
    rng = random.Random(7)
    with database.connection_context():
        for _ in range(4):  # several commits: later ones add to the rows earlier ones made
            write_batches([PendingBatch(rows=executions(rng, 300), response={}, kind=AGENTS)])
        assert table_rows(execute, table) == raw_rows(execute, table)
        assert len(table_rows(execute, table)) > 10


@databases.sqlite_only  # SQLite's migration 8; PostgreSQL's schema begins at version 9 with these rollups
def test_the_migration_fills_them_from_the_older_rollups(app, tmp_path):
    from weather_metrics.store.migrate import migrations

    rng = random.Random(8)
    with database.connection_context():
        write_batches([PendingBatch(rows=executions(rng, 500), response={}, kind=AGENTS)])
        database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    path = tmp_path / "copy.db"
    with sqlite3.connect(database.database) as source, sqlite3.connect(path) as copy:
        source.backup(copy)
        for table in FILLED_BY_8:
            copy.execute(f"DELETE FROM {table}")
        copy.executescript(migrations()[8].read_text())
        for table in FILLED_BY_8:
            assert table_rows(copy.execute, table) == raw_rows(copy.execute, table)
    source.close()
    copy.close()


def test_ranges_split_into_whole_days_spans_and_edges():
    low, high = START + 5 * HOUR, START + 10 * DAY + 2 * HOUR  # 5:00 on day 0 to 02:00 on day 10
    days, hours = whole_days(low, high)
    assert days == [(START + DAY, START + 9 * DAY)]
    assert hours == [(low, START + DAY - HOUR), (START + 10 * DAY, high)]
    # A period starting at 06:00 on day 3 keeps days 3 out of the whole ones.
    days, hours = whole_days(low, high, [START + 3 * DAY + 6 * HOUR])
    assert days == [(START + DAY, START + 2 * DAY), (START + 4 * DAY, START + 9 * DAY)]
    covered = sum((b - a) // HOUR + 1 for a, b in hours) + sum((b - a) // DAY + 1 for a, b in days) * 24
    assert covered == (high - low) // HOUR + 1
    first, last = START - 3 * DAY, START + 140 * DAY
    chosen, singles = day_spans(first, last, SPANS)
    every = sorted([d for n, s in chosen for d in range(s, s + n * DAY, DAY)]
                   + [d for a, b in singles for d in range(a, b + DAY, DAY)])  # fmt: skip
    assert every == list(range(first, last + DAY, DAY))  # each day once
    assert all((s // DAY) % n == 0 for n, s in chosen) and len(chosen) + len(singles) < 20


@pytest.mark.parametrize("aggregation", ["hour", "day"])
@pytest.mark.parametrize("success_only", [False, True])
def test_the_organization_series_from_the_hourly_totals_equals_the_per_agent_rows(
    app, monkeypatch, aggregation, success_only
):
    rng = random.Random(9)
    with database.connection_context():
        for _ in range(3):
            write_batches([PendingBatch(rows=executions(rng, 400), response={}, kind=AGENTS)])
        window = Window(datetime.fromtimestamp(START + 5 * HOUR, UTC), datetime.fromtimestamp(START + 40 * DAY, UTC),
                        ZoneInfo("America/New_York"), aggregation)  # fmt: skip
        scope = Scope("org", None, None)
        answer = org_metrics.agent_metrics(scope, window, success_only=success_only, limit=1000)
        org_metrics.SETTLED.clear()
        monkeypatch.setattr(org_metrics, "_series_filter", lambda hourly, scope, agent_name: hourly)
        per_agent = org_metrics.agent_metrics(scope, window, success_only=success_only, limit=1000)
    assert answer == per_agent
    assert sum(entry["calls"] > 0 for entry in answer["series"]) > 10


VERSION_12_ROWS = (
    "INSERT INTO agent_hourly VALUES ('o1', 3600, 'reviewer', 1, 3, 30.5), ('o1', 3600, 'writer', 1, 2, 4.0),"
    " ('o1', 3600, 'writer', 0, 1, 7.0), ('o1', 7200, 'reviewer', 1, 5, 1.25), ('o2', 3600, 'reviewer', 1, 1, 2.0)",
)
TOTALS = [("o1", 3600, 0, 1, 7.0), ("o1", 3600, 1, 5, 34.5), ("o1", 7200, 1, 5, 1.25), ("o2", 3600, 1, 1, 2.0)]


def test_a_version_12_database_gets_hourly_totals_from_its_agent_rows(tmp_path):
    location = databases.at_version(tmp_path / "v12.db", 12, [(sql, [()]) for sql in VERSION_12_ROWS])
    db.open_database(location)
    db.database.close_all()
    assert databases.rows(tmp_path / "v12.db", "SELECT * FROM agent_total_hourly ORDER BY 1, 2, 3") == TOTALS
