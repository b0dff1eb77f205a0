"""When the relay reads `live_events` next: at once after a commit on PostgreSQL, else after its poll interval.

On PostgreSQL a transaction that records a live event also sends `NOTIFY weather_metrics_live`,
which the server delivers at commit (and drops with a rollback) to every connection that
listens, on any host. Each relay listens on a connection of its own, outside the pool, and
reads the table as soon as one arrives. Notices only wake the relay; the events themselves
are read from the table, so a lost notice (a dropped connection, a restart) only delays
them until the next poll. A broken listening connection is opened again, at most every
few seconds, until it works.
"""

from __future__ import annotations

import logging
import os
import select
import time
from typing import Any

import psycopg2

from weather_metrics.store.db import database, is_postgresql

log = logging.getLogger(__name__)

CHANNEL = "weather_metrics_live"
RETRY_SECONDS = 2.0  # between attempts to open the listening connection again
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}


class Wakeup:
    """Waits for the relay's next read: a notice from PostgreSQL, the end of the interval, or `set()`."""

    def __init__(self) -> None:
        """Make it in the process that waits: a forked child must not share the pipe."""
        self._read_end, self._write_end = os.pipe()  # `set()` writes a byte: select wakes up
        os.set_blocking(self._read_end, False)
        self._conn: Any = None
        self._next_attempt = 0.0

    @property
    def listening(self) -> bool:
        """True while notices arrive: polling is only the fallback."""
        return self._conn is not None

    def open(self) -> None:
        """Listen, on PostgreSQL (a no-op on SQLite, or until the next try when the server does not answer)."""
        if self._conn is not None or not is_postgresql() or time.monotonic() < self._next_attempt:
            return
        self._next_attempt = time.monotonic() + RETRY_SECONDS
        try:
            # Keepalives: a server that vanished without closing the connection is noticed.
            params = {**KEEPALIVES, **database.obj.connect_params}
            conn = psycopg2.connect(dbname=database.obj.database, **params)
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(f"LISTEN {CHANNEL}")
        except psycopg2.Error:
            log.warning("cannot listen for live events; reading them every poll interval instead", exc_info=True)
            return
        self._conn = conn

    def wait(self, seconds: float, notices: bool = True) -> None:
        """Return after `seconds`, after `set()`, or, when `notices`, after a commit's notice."""
        self.open()
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            # poll, not select: a busy worker's descriptors run past select's 1024
            watched = select.poll()
            watched.register(self._read_end, select.POLLIN)
            listening = self._conn.fileno() if self._conn is not None else None
            if listening is not None:
                watched.register(listening, select.POLLIN)
            ready = {fd for fd, _ in watched.poll(max(1, int(left * 1000)))}
            if self._read_end in ready:
                self._drain_pipe()
                return
            if listening in ready and self._drain_notices() and notices:
                return

    def _drain_notices(self) -> bool:
        """Take the notices that arrived; True when there was one. A broken connection is closed (and retried)."""
        try:
            self._conn.poll()
        except psycopg2.Error:
            log.warning("the connection listening for live events broke; opening it again", exc_info=True)
            self.close_connection()
            return True  # read the table now: notices may have been lost
        arrived = bool(self._conn.notifies)
        self._conn.notifies.clear()
        return arrived

    def _drain_pipe(self) -> None:
        try:
            while os.read(self._read_end, 512):
                pass
        except BlockingIOError:
            pass

    def set(self) -> None:
        """Wake the waiting relay now (to stop it)."""
        try:
            os.write(self._write_end, b"x")
        except OSError:  # closed already, or full: it wakes either way
            pass

    def close_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg2.Error:
                pass
            self._conn = None

    def close(self) -> None:
        self.close_connection()
        for end in (self._read_end, self._write_end):
            try:
                os.close(end)
            except OSError:
                pass


def notify() -> None:
    """Tell every listening relay, at commit, that live events were recorded; call it inside the transaction."""
    if is_postgresql():
        database.execute_sql(f"NOTIFY {CHANNEL}")
