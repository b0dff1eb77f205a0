"""Rollups added up in Python (`Totals`) and upserted by the writer: every key arrives once, figures add up."""

from __future__ import annotations

import threading

import pytest

from tests import databases
from weather_metrics.store.batches import _upsert_sizes, upsert_totals, write_batches
from weather_metrics.store.db import database, is_postgresql
from weather_metrics.store.events import ErrorDaily, Session, VersionDaily
from weather_metrics.store.rowkind import Totals


def store(totals: Totals) -> None:
    with database.connection_context(), database.atomic():
        upsert_totals(totals)


def test_many_keys_are_upserted_over_several_statements_and_add_up(app, tmp_path):
    """More keys than one SQLite statement takes (PostgreSQL takes them in one): each is stored once, and a second
    commit adds to each."""
    keys = 9_000  # past the 8,191 rows of four columns a SQLite statement takes
    figures = {(86_400 * (n % 3), f"tool_{n}", "1.0.0"): (n + 1,) for n in range(keys)}
    totals = Totals(VersionDaily, ("day", "tool", "version"), ("calls",), figures)
    store(totals)
    store(totals)
    path = tmp_path / "metrics.db"
    assert databases.rows(path, "SELECT COUNT(*), SUM(calls) FROM version_daily") == [
        (keys, 2 * sum(range(1, keys + 1)))
    ]
    assert databases.rows(path, "SELECT calls FROM version_daily WHERE tool = 'tool_41'") == [(84,)]


def test_keys_of_any_text_are_stored_as_given_and_found_again(app, tmp_path):
    """What an array literal treats specially (on PostgreSQL each column is sent as one) is kept as written."""
    names = ['a"b', "back\\slash", "x,y", "{braces}", "two words", "NULL", "", "é€😀", "tab\tline\nend", '\\"']
    figures = {(0, name, f"v{n}"): (n + 1,) for n, name in enumerate(names)}
    store(Totals(VersionDaily, ("day", "tool", "version"), ("calls",), figures))
    store(Totals(VersionDaily, ("day", "tool", "version"), ("calls",), figures))
    stored = databases.rows(tmp_path / "metrics.db", "SELECT tool, version, calls FROM version_daily")
    assert sorted(stored) == sorted((name, f"v{n}", 2 * (n + 1)) for n, name in enumerate(names))


def test_a_latest_figure_keeps_the_larger_of_stored_and_new(app, tmp_path):
    store(
        Totals(Session, ("session_id",), ("last_seen",), {("a",): (7_200,), ("b",): (3_600,)}, frozenset({"last_seen"}))
    )
    store(
        Totals(
            Session, ("session_id",), ("last_seen",), {("a",): (3_600,), ("b",): (10_800,)}, frozenset({"last_seen"})
        )
    )
    stored = databases.rows(tmp_path / "metrics.db", "SELECT session_id, last_seen FROM sessions ORDER BY session_id")
    assert stored == [("a", 7_200), ("b", 10_800)]


def test_summed_and_latest_figures_of_one_table(app, tmp_path):
    def errors(count: int, last_seen: int) -> Totals:
        rows = {(0, "NetworkError"): (count, last_seen)}
        return Totals(ErrorDaily, ("day", "error_type"), ("errors", "last_seen"), rows, frozenset({"last_seen"}))

    store(errors(2, 7_200))
    store(errors(3, 3_600))
    stored = databases.rows(tmp_path / "metrics.db", "SELECT errors, last_seen FROM error_daily")
    assert stored == [(5, 7_200)]


@pytest.mark.parametrize("count", [0, 1, 742, 4_095, 4_096, 20_000])
def test_statement_lengths_cover_every_row_within_the_parameter_bound(app, count):
    with database.connection_context():
        sizes = _upsert_sizes(count, 8)
        postgresql = is_postgresql()
    assert sum(sizes) == count
    assert all(0 < size and size * 8 <= 32_766 for size in sizes)
    if not postgresql:  # a few lengths, each compiled once per connection
        assert all(size & (size - 1) == 0 for size in sizes)
        assert len(sizes) == count // 2048 + (count % 2048).bit_count()


def test_a_commit_of_events_needs_no_rollup_statement_over_its_rows(app, tmp_path):
    """The events rollups are Totals: nothing reads the new rows back, and no id is looked up."""
    from weather_metrics.store.batches import PendingBatch
    from weather_metrics.store.events import event_row

    event = {
        "version": "1.0.0",
        "tool": "search",
        "status": "success",
        "timestamp_hour": "2025-11-12T20:00:00Z",
        "analytics_level": "minimal",
    }
    sent: list[str] = []
    this_thread = threading.get_ident()  # the app's background threads query the same database object
    with database.connection_context():
        execute_sql = database.obj.execute_sql

        def recording(sql, params=None, *args, **kwargs):  # type: ignore[no-untyped-def]
            if threading.get_ident() == this_thread:
                sent.append(sql)
            return execute_sql(sql, params, *args, **kwargs)

        database.obj.execute_sql = recording
        try:
            write_batches([PendingBatch(rows=[event_row(event, 0)] * 3, response={})])
        finally:
            del database.obj.execute_sql
    reads = [sql for sql in sent if "FROM events" in sql or "MAX(id)" in sql]
    assert reads == []
    assert databases.rows(tmp_path / "metrics.db", "SELECT calls FROM tool_hourly") == [(3,)]
