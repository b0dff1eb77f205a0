"""EventWriter on a real database: group commit, back-pressure, withdraw, close, retries."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from functools import partial

import pytest

from tests import databases
from tests.support import make_event
from weather_metrics.store.batches import PendingBatch, write_batches
from weather_metrics.store.db import database, open_database, write_transaction
from weather_metrics.store.events import event_row
from weather_metrics.store.writer import EventWriter, QueueFull, WriterStopped

WAIT = 10.0  # upper bound of every wait, so a bug fails the test instead of hanging it


@pytest.fixture
def db_path(tmp_path):
    path = tmp_path / "writer.db"
    open_database(databases.location(path))
    yield path
    database.close_all()


@pytest.fixture
def start_writer(db_path):
    """Start writers on the test database; teardown releases gates and closes them."""
    writers: list[EventWriter] = []
    gates: list[Gate] = []

    def start(
        write=write_batches, max_events: int = 10_000, max_batch_events: int = 10_000, on_commit=None, **options
    ) -> EventWriter:
        if isinstance(write, Gate):
            gates.append(write)
        writer = EventWriter(
            write=write,
            max_events=max_events,
            max_batch_events=max_batch_events,
            on_commit=on_commit,
            **options,
            connect=partial(database.connect, reuse_if_open=True),
            disconnect=database.close,
        )
        writer.start()
        writers.append(writer)
        return writer

    yield start
    for gate in gates:
        gate.release.set()
    for writer in writers:
        writer.close(timeout=WAIT)


class Gate:
    """A write function that records each group; the first call waits for `release`, then writes."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls: list[list[PendingBatch]] = []

    def __call__(self, group: list[PendingBatch]) -> int:
        self.calls.append(list(group))
        if len(self.calls) == 1:
            self.entered.set()
            self.release.wait(WAIT)
        return write_batches(group)


def batch(label: str, size: int = 1, **kwargs) -> PendingBatch:
    """`size` events of the tool `label`, so the database shows which batches were stored."""
    now = int(time.time())
    rows = [event_row(make_event(tool=label), now) for _ in range(size)]
    return PendingBatch(rows=rows, response={"status": "accepted", "count": size, "label": label}, **kwargs)


def stored(db_path) -> Counter:
    """Events per tool, read through a connection of its own (so only committed rows count)."""
    return Counter(dict(databases.rows(db_path, "SELECT tool, COUNT(*) FROM events GROUP BY tool")))


def wait_done(*batches: PendingBatch) -> None:
    for b in batches:
        assert b.done.wait(WAIT), f"batch {b.response['label']} was not committed"


def test_batches_queued_during_a_commit_are_committed_together(start_writer, db_path):
    gate = Gate()
    writer = start_writer(write=gate)
    a = batch("a", 2)
    writer.submit(a)
    assert gate.entered.wait(WAIT)
    b, c, d = batch("b", 1), batch("c", 3), batch("d", 1)
    for queued in (b, c, d):
        writer.submit(queued)
    gate.release.set()
    wait_done(a, b, c, d)
    assert gate.calls == [[a], [b, c, d]]
    assert stored(db_path) == {"a": 2, "b": 1, "c": 3, "d": 1}
    assert [x.stored for x in (a, b, c, d)] == [2, 1, 3, 1]
    assert all(x.result == x.response for x in (a, b, c, d))


def test_a_group_holds_at_most_max_batch_events(start_writer, db_path):
    gate = Gate()
    writer = start_writer(write=gate, max_batch_events=4)
    a = batch("a", 1)
    writer.submit(a)
    assert gate.entered.wait(WAIT)
    b, c, d, big = batch("b", 1), batch("c", 3), batch("d", 2), batch("big", 9)
    for queued in (b, c, d, big):
        writer.submit(queued)
    gate.release.set()
    wait_done(a, b, c, d, big)
    # A batch larger than the cap still goes, alone.
    assert gate.calls == [[a], [b, c], [d], [big]]
    assert stored(db_path) == {"a": 1, "b": 1, "c": 3, "d": 2, "big": 9}


def test_queue_full_rejects_the_batch_without_queueing_it(start_writer, db_path):
    gate = Gate()
    writer = start_writer(write=gate, max_events=100)
    in_flight = batch("inflight", 60)
    writer.submit(in_flight)
    assert gate.entered.wait(WAIT)
    queued = batch("queued", 30)
    writer.submit(queued)
    rejected = batch("rejected", 11)
    with pytest.raises(QueueFull):
        writer.submit(rejected)
    assert writer.depth == 90
    exactly_full = batch("fits", 10)
    writer.submit(exactly_full)  # 100 events is the limit, not past it
    assert writer.depth == 100
    with pytest.raises(QueueFull):
        writer.submit(batch("one_more", 1))
    gate.release.set()
    wait_done(in_flight, queued, exactly_full)
    writer.close(timeout=WAIT)
    assert not rejected.done.is_set()
    assert stored(db_path) == {"inflight": 60, "queued": 30, "fits": 10}
    assert writer.depth == 0


def test_queue_takes_batches_again_once_committed(start_writer, db_path):
    writer = start_writer(max_events=10)
    first = batch("first", 10)
    writer.submit(first)
    wait_done(first)
    second = batch("second", 10)
    writer.submit(second)
    wait_done(second)
    assert stored(db_path) == {"first": 10, "second": 10}


def test_withdrawn_batch_is_never_written(start_writer, db_path):
    gate = Gate()
    writer = start_writer(write=gate)
    a = batch("a", 1)
    writer.submit(a)
    assert gate.entered.wait(WAIT)
    b, c = batch("b", 4), batch("c", 2)
    writer.submit(b)
    writer.submit(c)
    assert writer.depth == 7
    assert writer.withdraw(b) is True
    assert writer.depth == 3
    assert writer.withdraw(b) is False  # already taken back
    gate.release.set()
    wait_done(a, c)
    writer.close(timeout=WAIT)
    assert not b.done.is_set()
    assert gate.calls == [[a], [c]]
    assert stored(db_path) == {"a": 1, "c": 2}


def test_in_flight_batch_cannot_be_withdrawn(start_writer, db_path):
    gate = Gate()
    writer = start_writer(write=gate)
    a = batch("a", 2)
    writer.submit(a)
    assert gate.entered.wait(WAIT)
    assert writer.withdraw(a) is False
    gate.release.set()
    wait_done(a)
    assert stored(db_path) == {"a": 2}
    assert writer.withdraw(a) is False  # committed


def test_close_writes_everything_submitted_before_it(start_writer, db_path):
    gate = Gate()
    writer = start_writer(write=gate)
    batches = [batch(f"b{n}", n + 1) for n in range(5)]
    writer.submit(batches[0])
    assert gate.entered.wait(WAIT)
    for queued in batches[1:]:
        writer.submit(queued)
    releaser = threading.Timer(0.2, gate.release.set)  # close() starts while a commit is blocked
    releaser.start()
    try:
        writer.close(timeout=WAIT)
    finally:
        releaser.cancel()
        gate.release.set()
    assert not writer.alive
    assert all(b.done.is_set() for b in batches)
    assert stored(db_path) == {f"b{n}": n + 1 for n in range(5)}
    assert writer.depth == 0


def test_close_is_idempotent(start_writer, db_path):
    writer = start_writer()
    a = batch("a", 3)
    writer.submit(a)
    writer.close(timeout=WAIT)
    writer.close(timeout=WAIT)
    assert not writer.alive
    assert a.done.is_set()
    assert stored(db_path) == {"a": 3}


def test_submit_after_close_raises_writer_stopped(start_writer, db_path):
    writer = start_writer()
    writer.close(timeout=WAIT)
    late = batch("late", 2)
    with pytest.raises(WriterStopped):
        writer.submit(late)
    assert writer.depth == 0
    assert not late.done.is_set()
    assert stored(db_path) == {}


def test_failed_writes_are_retried_and_stored_exactly_once(start_writer, db_path):
    attempts: list[list[PendingBatch]] = []
    commits: list[tuple[list[PendingBatch], int]] = []

    failing_seen: list[bool] = []

    def flaky(group: list[PendingBatch]) -> int:
        failing_seen.append(writer.failing)
        attempts.append(list(group))
        if len(attempts) <= 2:
            # Fail after the rows went in, as a failing COMMIT would: nothing may remain.
            with write_transaction():
                write_batches(group)
                raise sqlite3.OperationalError("disk I/O error")
        return write_batches(group)

    writer = start_writer(write=flaky, on_commit=lambda group, count, _s: commits.append((list(group), count)))
    a, b = batch("a", 3), batch("b", 2)
    writer.submit(a)
    writer.submit(b)
    wait_done(a, b)
    assert len(attempts) == 3
    assert failing_seen == [False, True, True]  # what /v1/health reports meanwhile
    assert not writer.failing
    assert all(group == attempts[-1] for group in attempts)
    assert stored(db_path) == {"a": 3, "b": 2}
    assert sum(count for _, count in commits) == 5
    assert writer.depth == 0


def test_on_commit_gets_batches_stored_count_and_seconds_after_commit(start_writer, db_path):
    gate = Gate()
    seen: list[tuple[list[PendingBatch], int, float, bool, Counter]] = []

    def on_commit(group, count, seconds):
        seen.append((list(group), count, seconds, all(b.done.is_set() for b in group), stored(db_path)))

    writer = start_writer(write=gate, on_commit=on_commit)
    a = batch("a", 2)
    writer.submit(a)
    assert gate.entered.wait(WAIT)
    b, c = batch("b", 3), batch("c", 1)
    writer.submit(b)
    writer.submit(c)
    gate.release.set()
    wait_done(a, b, c)
    writer.close(timeout=WAIT)

    assert [(group, count) for group, count, *_ in seen] == [([a], 2), ([b, c], 4)]
    assert all(isinstance(seconds, float) and 0 <= seconds < WAIT for _, _, seconds, _, _ in seen)
    assert all(done for _, _, _, done, _ in seen)  # waiting handlers are woken before listeners run
    # Committed, and visible to other connections, when the listener runs.
    assert seen[0][4] == {"a": 2}
    assert seen[1][4] == {"a": 2, "b": 3, "c": 1}


def test_repeated_idempotency_key_in_one_group_is_stored_once(start_writer, db_path):
    counts: list[int] = []
    gate = Gate()
    writer = start_writer(write=gate, on_commit=lambda _g, count, _s: counts.append(count))
    a = batch("a", 1)
    writer.submit(a)
    assert gate.entered.wait(WAIT)
    first = batch("keyed", 3, idempotency_key="k1", body_hash="h")
    retry = batch("keyed", 3, idempotency_key="k1", body_hash="h")
    retry.response["attempt"] = 2  # answered with the first response, not its own
    writer.submit(first)
    writer.submit(retry)  # a client retry that arrived before the first was committed
    gate.release.set()
    wait_done(a, first, retry)
    assert gate.calls[1] == [first, retry]
    assert retry.result == first.response
    assert stored(db_path) == {"a": 1, "keyed": 3}
    assert (first.stored, retry.stored) == (3, 0)
    assert counts == [1, 3]


def test_idempotency_key_committed_earlier_is_not_stored_again(start_writer, db_path):
    writer = start_writer()
    first = batch("keyed", 2, idempotency_key="k2", body_hash="h")
    writer.submit(first)
    wait_done(first)
    # The retry passed the intake's replay check before `first` was committed.
    retry = batch("keyed", 2, idempotency_key="k2", body_hash="h")
    retry.response["attempt"] = 2
    writer.submit(retry)
    wait_done(retry)
    assert retry.result == first.response
    assert retry.stored == 0
    assert stored(db_path) == {"keyed": 2}


def test_a_failing_on_commit_hook_does_not_stop_the_writer(start_writer, db_path):
    def broken(*_args):
        raise RuntimeError("listener bug")

    writer = start_writer(on_commit=broken)
    a = batch("a", 1)
    writer.submit(a)
    wait_done(a)
    b = batch("b", 1)
    writer.submit(b)
    wait_done(b)
    assert writer.alive
    assert stored(db_path) == {"a": 1, "b": 1}


def test_depth_counts_events_until_they_are_committed(start_writer, db_path):
    gate = Gate()
    writer = start_writer(write=gate)
    assert writer.depth == 0
    a = batch("a", 3)
    writer.submit(a)
    assert gate.entered.wait(WAIT)
    assert writer.depth == 3  # being written is not yet committed
    writer.submit(batch("b", 4))
    assert writer.depth == 7
    assert stored(db_path) == {}
    gate.release.set()
    wait_done(a)
    writer.close(timeout=WAIT)
    assert writer.depth == 0
    assert stored(db_path) == {"a": 3, "b": 4}


def test_housekeeping_with_more_to_do_runs_again_between_commits(start_writer, db_path):
    """A long prune goes in steps; a batch submitted meanwhile is committed between two steps."""
    steps: list[float] = []
    more = threading.Event()
    more.set()

    def step() -> bool:
        steps.append(time.monotonic())
        time.sleep(0.01)  # one chunk of deleting
        return more.is_set()

    writer = start_writer(housekeeping=step, housekeeping_interval=3600)
    deadline = time.monotonic() + WAIT
    while len(steps) < 3 and time.monotonic() < deadline:
        time.sleep(0.005)
    late = batch("late", 2)
    writer.submit(late)
    wait_done(late)  # while housekeeping still says it has more to do
    assert stored(db_path) == {"late": 2}
    before = len(steps)
    time.sleep(0.1)
    assert len(steps) > before, "housekeeping goes on after the commit"
    more.clear()
    time.sleep(0.05)
    finished = len(steps)
    time.sleep(0.2)
    assert len(steps) == finished, "with nothing more to do, housekeeping waits for its interval"


def test_a_key_reused_for_a_different_body_in_one_group_is_a_conflict_not_a_loss(db_path):
    first = batch("first", 2, idempotency_key="k-1", body_hash="aaa")
    second = batch("second", 3, idempotency_key="k-1", body_hash="bbb")
    with database.connection_context():
        write_batches([first, second])
    assert stored(db_path) == {"first": 2}
    assert first.result == first.response and not first.key_conflict
    assert second.key_conflict and second.result is None and second.stored == 0


def test_an_expired_key_not_yet_pruned_is_claimed_again(db_path):
    old = batch("old", 1, idempotency_key="k-2", body_hash="same")
    new = batch("new", 3, idempotency_key="k-2", body_hash="same")
    with database.connection_context():
        write_batches([old], clock=lambda: time.time() - 25 * 3600, idempotency_ttl=24 * 3600)
        write_batches([new], idempotency_ttl=24 * 3600)
    assert stored(db_path) == {"old": 1, "new": 3}
    assert new.result == new.response


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_writer_whose_thread_died_refuses_new_batches(db_path):
    def crash() -> None:
        raise SystemExit  # ends the thread the way an unexpected BaseException would

    writer = EventWriter(write=write_batches, max_events=100, max_batch_events=100, connect=crash)
    writer.start()
    deadline = time.monotonic() + WAIT
    while writer.alive and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(WriterStopped):
        writer.submit(batch("late"))


def test_a_batch_the_database_cannot_take_is_refused_alone_and_the_rest_are_stored(start_writer, db_path):
    """A row SQLite cannot encode fails every retry: it must not stop ingestion for everyone."""
    gate = Gate()
    writer = start_writer(write=gate)
    first = batch("first")
    writer.submit(first)
    assert gate.entered.wait(WAIT)  # the writer holds `first`; the next three queue up as one group
    good, bad, later = batch("good", 2), batch("bad"), batch("later", 3)
    bad.rows = [tuple("\ud800" if value == "bad" else value for value in bad.rows[0])]  # a lone surrogate
    for pending in (good, bad, later):
        writer.submit(pending)
    gate.release.set()
    wait_done(first, good, bad, later)
    assert stored(db_path) == {"first": 1, "good": 2, "later": 3}
    assert bad.failure is not None and "UnicodeEncodeError" in bad.failure
    assert good.failure is None and later.failure is None
    assert not writer.failing and writer.depth == 0
    after = batch("after")
    writer.submit(after)
    wait_done(after)
    assert stored(db_path)["after"] == 1


def test_a_schema_error_is_not_retried_forever(start_writer, db_path):
    """'no such column' and the like fail every retry: the batch is refused and the writer goes on."""
    calls: list[int] = []

    def mismatched(group: list[PendingBatch]) -> int:
        calls.append(len(group))
        if any(b.response["label"] == "bad" for b in group):
            raise sqlite3.OperationalError("ON CONFLICT clause does not match any PRIMARY KEY or UNIQUE constraint")
        return write_batches(group)

    writer = start_writer(write=mismatched)
    bad, good = batch("bad"), batch("good")
    writer.submit(bad)
    wait_done(bad)
    writer.submit(good)
    wait_done(good)
    assert bad.failure is not None and "ON CONFLICT" in bad.failure
    assert stored(db_path) == {"good": 1}
    assert calls == [1, 1] and not writer.failing


def test_idle_background_loops_leave_the_write_lock_to_the_writer(app, tmp_path):
    """With nothing due, a webhook, export or alert poll only reads: it never waits for (or takes) the write lock.

    Several of them poll twice a second; each taking the lock made the event writer wait at BEGIN.
    """
    state = app.extensions["weather_metrics"]
    for loop in (state.webhooks, state.reports, state.alerts):
        loop.close()  # the test polls by hand
    now = datetime.now(UTC)
    answers: list[object] = []

    def poll() -> None:
        try:
            answers.extend(loop.run_once(now) for loop in (state.webhooks, state.reports, state.alerts))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            answers.append(exc)

    with databases.holding_write_lock(tmp_path / "metrics.db"):  # as the event writer does while it commits
        polls = threading.Thread(target=poll)
        polls.start()
        polls.join(WAIT)  # a poll waiting for the lock would wait until it is released
        assert not polls.is_alive(), "a poll waited for the write lock"
    polls.join(WAIT)
    assert answers == [False, False, False]
