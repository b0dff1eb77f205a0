"""EventWriter: the one thread that writes events, fed by a bounded in-memory queue.

Handlers `submit` batches; the thread takes everything queued so far (up to a cap),
commits it in one transaction (group commit) and wakes the handlers waiting on it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import peewee

from weather_metrics.core.errors import ServiceError
from weather_metrics.core.times import HOUR
from weather_metrics.store.batches import PendingBatch

log = logging.getLogger(__name__)


WriteFn = Callable[[list[PendingBatch]], int]


# Failures of the database itself (locked, I/O, full disk, a lost connection to PostgreSQL):
# retrying the same write can succeed.
TRANSIENT = (sqlite3.OperationalError, peewee.OperationalError, peewee.InterfaceError)


# ...except these, which say the schema does not fit the statement: no retry can help.
SCHEMA_ERRORS = ("no such table", "no such column", "has no column", "on conflict clause")


def _transient(exc: Exception) -> bool:
    return isinstance(exc, TRANSIENT) and not str(exc).lower().startswith(SCHEMA_ERRORS)


CommitHook = Callable[[list[PendingBatch], int, float], None]


class QueueFull(ServiceError):
    """The queue cannot take the batch now; the client should retry later."""


class WriterStopped(ServiceError):
    """The writer is shutting down and takes no more batches."""


class EventWriter:
    """Owns the write connection; `close()` writes everything accepted before it."""

    def __init__(
        self,
        write: WriteFn,
        max_events: int,
        max_batch_events: int,
        on_commit: CommitHook | None = None,
        housekeeping: Callable[[], Any] | None = None,
        housekeeping_interval: float = HOUR,
        connect: Callable[[], Any] | None = None,
        disconnect: Callable[[], Any] | None = None,
    ) -> None:
        self._write = write
        self._max_events = max_events
        self._max_batch_events = max_batch_events
        self._on_commit = on_commit
        self._housekeeping = housekeeping
        self._housekeeping_interval = housekeeping_interval
        self._connect = connect
        self._disconnect = disconnect
        self._queue: deque[PendingBatch] = deque()
        self._queued_events = 0
        self._in_flight: list[PendingBatch] = []
        self._cond = threading.Condition()
        self._stopping = False
        self.failing = False  # True while a write keeps failing and is being retried
        self._thread = threading.Thread(target=self._run, name="event-writer", daemon=True)
        self._next_housekeeping = time.monotonic()

    @property
    def depth(self) -> int:
        """Events accepted but not yet committed."""
        return self._queued_events

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def submit(self, batch: PendingBatch) -> None:
        """Queue a batch, or raise QueueFull / WriterStopped without queueing it."""
        size = len(batch.rows)
        with self._cond:
            if self._stopping or not self._thread.is_alive():
                raise WriterStopped
            if self._queued_events + size > self._max_events:
                raise QueueFull
            self._queue.append(batch)
            self._queued_events += size
            self._cond.notify()

    def withdraw(self, batch: PendingBatch) -> bool:
        """Take back a batch the writer has not started on; False once it is being written."""
        with self._cond:
            if batch.done.is_set() or batch in self._in_flight:
                return False
            try:
                self._queue.remove(batch)
            except ValueError:
                return False
            self._queued_events -= len(batch.rows)
            return True

    def close(self, timeout: float = 30.0) -> None:
        """Stop taking batches, write what was accepted, and join the thread. Idempotent."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("event writer did not finish within %.0fs; %d events unwritten", timeout, self._queued_events)

    def _take(self) -> list[PendingBatch] | None:
        """The next group to commit; None when stopping and the queue is empty."""
        with self._cond:
            while not self._queue and not self._stopping:
                wait = self._next_housekeeping - time.monotonic()
                if wait <= 0:
                    return []
                self._cond.wait(wait)
            if not self._queue:
                return None
            group: list[PendingBatch] = []
            events = 0
            while self._queue and (not group or events + len(self._queue[0].rows) <= self._max_batch_events):
                batch = self._queue.popleft()
                group.append(batch)
                events += len(batch.rows)
            self._in_flight = group
            return group

    def _write_group(self, group: list[PendingBatch]) -> int:
        """Write a group, retrying while the database fails; rows stored.

        An error that is not the database's (a row it cannot take) would fail every retry
        and stop all ingestion: the group is then written batch by batch, and a batch that
        fails alone is given up with its `failure` set.
        """
        delay = 0.05
        while True:
            try:
                stored = self._write(group)
                self.failing = False
                return stored
            except Exception as exc:  # noqa: BLE001 - the batches stay ours until stored or refused
                if _transient(exc):
                    self.failing = True
                    log.exception("writing %d batches failed; retrying in %.2fs", len(group), delay)
                    time.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    self._reconnect()
                    continue
                if len(group) > 1:
                    return sum(self._write_group([batch]) for batch in group)
                log.exception("a batch of %d rows cannot be written; it is refused", len(group[0].rows))
                group[0].failure = f"{type(exc).__name__}: {exc}"
                return 0

    def _reconnect(self) -> None:
        """A fresh connection before a retry: the failure may have been the connection's (a server restart)."""
        if self._connect is None or self._disconnect is None:
            return
        try:
            self._disconnect()
            self._connect()
        except Exception:  # noqa: BLE001 - the next attempt fails and reports it, then tries again
            log.warning("reconnecting to the database failed", exc_info=True)

    def _commit(self, group: list[PendingBatch]) -> None:
        started = time.perf_counter()
        stored = self._write_group(group)
        elapsed = time.perf_counter() - started
        with self._cond:
            self._queued_events -= sum(len(b.rows) for b in group)
            self._in_flight = []
        for batch in group:
            batch.done.set()
            if batch.on_done is not None:
                try:
                    batch.on_done()
                except Exception:  # noqa: BLE001 - a waiting request's failure must not stop the writer
                    log.exception("a commit callback failed")
        if self._on_commit is not None:
            try:
                self._on_commit(group, stored, elapsed)
            except Exception:  # noqa: BLE001 - a listener must not stop the writer
                log.exception("commit listener failed")

    def _run_housekeeping(self) -> None:
        """One step of housekeeping; a step that says more remains runs again after the next commit."""
        more = False
        if self._housekeeping is not None:
            try:
                more = bool(self._housekeeping())
            except Exception:  # noqa: BLE001 - retried at the next interval
                log.exception("housekeeping failed")
        self._next_housekeeping = time.monotonic() + (0 if more else self._housekeeping_interval)

    def _run(self) -> None:
        if self._connect is not None:
            self._connect()
        try:
            while True:
                group = self._take()
                if group is None:
                    return
                if group:
                    self._commit(group)
                if time.monotonic() >= self._next_housekeeping:
                    self._run_housekeeping()
        finally:
            if self._disconnect is not None:
                self._disconnect()
