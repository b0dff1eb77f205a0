"""Pruning /v1 events without an index of every event's hour: by id if they came on time, by events_late if late."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from tests import databases
from tests.support import make_event
from weather_metrics.core.times import DAY, HOUR
from weather_metrics.store import pruning
from weather_metrics.store.batches import PendingBatch, write_batches
from weather_metrics.store.db import database, execute
from weather_metrics.store.events import event_row

NOW = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
RETENTION_DAYS = 30
CUTOFF = int((NOW - timedelta(days=RETENTION_DAYS)).timestamp()) // HOUR * HOUR


def arrivals(rng: random.Random) -> list[tuple[int, int]]:
    """(hour, received_at) of events arriving over 40 days, in the order they commit.

    Most arrive within 20 hours of their hour, some days late; arrival times go back by up to
    half an hour between neighbours (queues, several processes).
    """
    now = int(NOW.timestamp())
    out = []
    for _ in range(3_000):
        received = now - rng.randrange(40 * DAY)
        behind = rng.randrange(2 * DAY, 12 * DAY) if rng.random() < 0.1 else rng.randrange(20 * HOUR)
        hour = max((received - behind) // HOUR * HOUR, now // HOUR * HOUR - 60 * DAY)
        out.append((hour, received))
    out.sort(key=lambda pair: pair[1] + rng.randrange(-HOUR // 2, HOUR // 2))
    return out


def write(pairs: list[tuple[int, int]]) -> None:
    for start in range(0, len(pairs), 97):
        rows = []
        for hour, received in pairs[start : start + 97]:
            moment = datetime.fromtimestamp(hour, UTC).strftime("%Y-%m-%dT%H:00:00Z")
            rows.append(event_row({**make_event(timestamp_hour=moment), "timestamp_hour": moment}, received))
        write_batches([PendingBatch(rows=rows, response={})])


def stored() -> list[tuple[int, int]]:
    return [tuple(row) for row in execute("SELECT timestamp_hour, received_at FROM events ORDER BY id")]


def test_pruning_deletes_every_event_before_the_cutoff_and_no_other(make_app):
    make_app()  # the database, on the run's backend
    pairs = arrivals(random.Random(16))
    with database.connection_context():
        write(pairs)
        before = stored()
        assert sum(1 for hour, received in before if hour < CUTOFF and received > CUTOFF + DAY) > 50  # late ones
        assert sum(1 for hour, received in before if hour < CUTOFF <= received) > 50  # on time, after the cutoff
        steps, more = 0, True
        while more:  # in chunks of 40, so the search runs over the gaps pruning leaves
            _, more = pruning.prune_step(NOW, RETENTION_DAYS, 400, 24, chunk=40)
            steps += 1
        assert steps > 20
        assert sorted(stored()) == sorted(pair for pair in before if pair[0] >= CUTOFF)


def test_an_empty_table_and_one_with_nothing_to_prune(make_app):
    make_app()
    with database.connection_context():
        assert pruning.prune_step(NOW, RETENTION_DAYS, 400, 24) == (0, False)
        recent = [(int(NOW.timestamp()) // HOUR * HOUR - n * HOUR, int(NOW.timestamp()) - n * 60) for n in range(50)]
        write(recent)
        assert pruning.prune_step(NOW, RETENTION_DAYS, 400, 24) == (0, False)
        assert len(stored()) == 50


@databases.sqlite_only
def test_late_events_are_looked_up_through_their_partial_index(make_app):
    make_app()
    with database.connection_context():
        plan = execute(f"EXPLAIN QUERY PLAN {pruning.LATE_EVENTS}", (CUTOFF, 0, 10)).fetchall()
        assert any("events_late" in str(step) for step in plan), plan
        indexes = [row[1] for row in execute("PRAGMA index_list(events)")]
        assert indexes == ["events_late"]  # no index of every event's hour for the writer to keep


@pytest.mark.skipif(not databases.ON_POSTGRESQL, reason="about PostgreSQL's planner")
def test_late_events_are_looked_up_through_their_partial_index_before_postgresql_analyzes_events(make_app):
    """A few late events of 200,000 events, none ANALYZEd yet (as after a copy): still through events_late.

    Pruning asks for as many as its chunk has room left for, often a few; a sequential scan
    of the table would run inside the write lock that every commit waits for.
    """
    make_app()
    now = int(NOW.timestamp())
    with database.connection_context():
        execute("TRUNCATE events")  # no row count known, as for a table just filled
        execute("ALTER TABLE events SET (autovacuum_enabled = false)")  # and none learnt meanwhile
        try:
            execute(
                "INSERT INTO events (received_at, timestamp_hour, version, tool, is_error, analytics_level)"
                " SELECT r, (r - n % 20 * 3600) / 3600 * 3600, '1.0', 'search', 0, 'minimal'"
                " FROM (SELECT n, ? - 40 * 86400 + n * 17 AS r FROM generate_series(1, 200000) AS n) AS s",
                (now,),
            )
            for limit in (5, 40, 1000):
                plan = [row[0] for row in execute(f"EXPLAIN {pruning.LATE_EVENTS}", (CUTOFF, 0, limit))]
                assert any("events_late" in step for step in plan), (limit, plan)
        finally:
            execute("ALTER TABLE events RESET (autovacuum_enabled)")
