"""Statistics answered from memory: equal to a fresh computation, never older than the last commit, bounded."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from tests import databases
from tests.support import Server, current_hour, http, make_event
from weather_metrics.query import stats
from weather_metrics.query.answers import AnswerCache
from weather_metrics.store import backup, versions
from weather_metrics.store.batches import PendingBatch, write_batches
from weather_metrics.store.db import database
from weather_metrics.store.events import event_row
from weather_metrics.store.migrate import SCHEMA_VERSION
from weather_metrics.store.pruning import prune

HOUR = 3600
QUESTIONS = (
    (stats.overview, ("7d",)),
    (stats.overview, ("90d",)),
    (stats.tools, ("30d",)),
    (stats.errors, ("30d",)),
    (stats.performance, ("90d",)),
    (stats.daily, ("30d",)),
    (stats.versions_and_countries, ("90d",)),
    (stats.tool_detail, ("get_forecast", "30d")),
)


def write_events(*events: dict) -> None:
    """Commit events as the writer does."""
    rows = [event_row(event, int(datetime.now(UTC).timestamp())) for event in events]
    with database.connection_context():
        write_batches([PendingBatch(rows=rows, response={})])


def seed() -> None:
    write_events(
        make_event(),
        make_event(tool="get_alerts", status="error", error_type="TimeoutError", country="DE", session_id="s1"),
        make_event(version="1.1.0", response_time_ms=2400, cache_hit=False, timestamp_hour=current_hour(30)),
        make_event(service="openmeteo", timestamp_hour=current_hour(24 * 40)),
    )


def total_calls(period: str = "30d") -> int:
    with database.connection_context():
        return stats.overview(period, datetime.now(UTC))["summary"]["total_calls"]  # type: ignore[no-any-return]


def test_an_answer_from_memory_equals_a_fresh_computation(app):
    seed()
    now = datetime.now(UTC)
    with database.connection_context():
        for question, args in QUESTIONS:
            first = question(*args, now)
            hits = stats.ANSWERS.hits
            again = question(*args, now)
            assert stats.ANSWERS.hits == hits + 1, question.__name__  # the second came from memory
            assert again == first == question.__wrapped__(*args, now)  # type: ignore[attr-defined]


def test_a_web_answer_from_memory_is_the_kept_text_and_the_body_jsonify_would_send(app):
    """The text is sent as kept, not decoded and encoded again: the same string each time."""
    seed()
    client = app.test_client()
    now = datetime.now(UTC)
    for url, question, args in (
        ("/v1/stats/overview?period=7d", stats.overview, ("7d",)),
        ("/v1/stats/tool/get_forecast?period=30d", stats.tool_detail, ("get_forecast", "30d")),
        ("/v1/stats/performance?period=90d", stats.performance, ("90d",)),
    ):
        body = client.get(url).get_data(as_text=True)
        with app.app_context(), database.connection_context():
            kept = question.text(*args, now)
            assert question.text(*args, now) is kept
            assert body == kept + "\n" == app.json.response(question.__wrapped__(*args, now)).get_data(as_text=True)


def test_a_caller_changing_its_answer_does_not_change_the_next_one(app):
    seed()
    now = datetime.now(UTC)
    with database.connection_context():
        stats.overview("30d", now)
        stats.overview("30d", now)["tools"].clear()
        assert stats.overview("30d", now)["tools"]


def test_a_commit_shows_in_the_very_next_answer(app):
    seed()
    before = total_calls()
    assert total_calls() == before  # kept
    write_events(make_event())
    assert total_calls() == before + 1


def test_an_answer_serves_only_its_utc_date(app):
    """The periods end with today: tomorrow's 7 days leave out what today's hold."""
    write_events(make_event(timestamp_hour=current_hour(24 * 6 + 1)))
    today = datetime.now(UTC)
    with database.connection_context():
        assert stats.overview("7d", today)["summary"]["total_calls"] == 1
        week_on = stats.overview("7d", today + timedelta(days=2))
        assert week_on["summary"]["total_calls"] == 0
        assert week_on == stats.overview.__wrapped__("7d", today + timedelta(days=2))  # type: ignore[attr-defined]


def test_pruning_moves_the_version_and_the_answer(app):
    seed()
    assert total_calls("90d") == 4
    with database.connection_context():
        before = versions.current(versions.EVENTS)
        # Rollups of the event 40 days old go: the rest are within the last 20 days' retention.
        prune(datetime.now(UTC) + timedelta(days=380), 3650, 400, 24)
        assert versions.current(versions.EVENTS) > before
    assert total_calls("90d") == 3


def test_only_the_kinds_written_move(app):
    with database.connection_context():
        before = {name: versions.current(name) for name in versions.NAMES}
    write_events(make_event())
    with database.connection_context():
        after = {name: versions.current(name) for name in versions.NAMES}
    assert after == {**before, versions.EVENTS: before[versions.EVENTS] + 1}


@databases.sqlite_only  # `restore` replaces SQLite files; on PostgreSQL pg_restore does (docs/storage.md)
def test_a_restored_database_has_versions_above_the_replaced_one(tmp_path, make_app):
    live, copy = tmp_path / "live.db", tmp_path / "copy.db"
    app = make_app(database=str(live))
    backup.backup(live, copy)  # at the versions of a new database
    write_events(make_event())
    write_events(make_event())
    app.extensions["weather_metrics"].close()
    database.close_all()
    backup.release_service_lock(live)
    backup.restore(copy, live, SCHEMA_VERSION)
    with sqlite3.connect(live) as conn:
        restored = dict(conn.execute("SELECT name, version FROM data_versions"))
    conn.close()
    with sqlite3.connect(copy) as conn:
        copied = dict(conn.execute("SELECT name, version FROM data_versions"))
    conn.close()
    assert restored[versions.EVENTS] == copied[versions.EVENTS] + 3  # past the two commits made since the copy
    assert restored[versions.AGENT_EXECUTIONS] == copied[versions.AGENT_EXECUTIONS] + 1


def test_memory_holds_at_most_its_size_and_drops_the_least_recently_asked(app):
    cache = AnswerCache(versions.EVENTS, max_bytes=2_000)
    answer = {"figures": list(range(100))}  # 300 bytes or so of JSON
    with database.connection_context():
        for n in range(40):
            cache.answer(("question", n), lambda: answer)
            cache.answer(("question", 0), lambda: answer)  # asked again and again: kept
            assert cache.size_bytes <= 2_000
        assert 0 < len(cache) < 40
        hits = cache.hits
        cache.answer(("question", 0), lambda: answer)
        cache.answer(("question", 1), lambda: answer)
        assert cache.hits == hits + 1  # 0 was kept, 1 was dropped long ago
        cache.answer(("huge",), lambda: {"figures": list(range(10_000))})  # larger than the whole cache
        assert cache.size_bytes <= 2_000
        cache.resize(0)
        assert len(cache) == 0 and cache.size_bytes == 0


def test_a_setting_of_zero_keeps_nothing(make_app):
    make_app(stats_cache_mib=0)
    seed()
    assert total_calls() == total_calls()
    assert len(stats.ANSWERS) == 0


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory):
    """Two servers (processes) on one database file."""
    database_file = tmp_path_factory.mktemp("answers") / "metrics.db"
    with Server(database_file) as first, Server(database_file) as second:
        yield first, second


def overview_calls(server: Server) -> int:
    status, _, body = http("GET", server.url + "/v1/stats/overview?period=7d")
    assert status == 200, body
    return body["summary"]["total_calls"]  # type: ignore[no-any-return]


def post_event(server: Server) -> None:
    status, _, body = http("POST", server.url + "/v1/events", {"events": [make_event()]})
    assert status == 200 and body["status"] == "accepted", body


def test_an_event_posted_to_one_process_is_in_the_next_answer_of_either(two_servers):
    first, second = two_servers
    for writer, reader in ((first, first), (first, second), (second, first), (second, second)):
        before = overview_calls(reader)
        assert overview_calls(reader) == before  # asked twice: the second from memory
        post_event(writer)
        assert overview_calls(reader) == before + 1
