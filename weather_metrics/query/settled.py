"""Results of rollup queries over settled UTC days (before yesterday), kept until those days change."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

from weather_metrics.core.times import DAY
from weather_metrics.store import versions
from weather_metrics.store.db import binding, execute

Rows = list[tuple[Any, ...]]


def query_rows(sql: str, params: tuple[Any, ...], low: int, high: int) -> Rows:
    return execute(sql, (*params, low, high)).fetchall()  # type: ignore[no-any-return]


class SettledRows:
    """Results of rollup queries over UTC days before yesterday, reused until those days change.

    Each result is kept with the data version `data` read before its query; every
    transaction that changes those days (a late row for one, pruning) raises the version in
    the database (store/versions.py), so a commit in any process or on any host makes the
    next query here read afresh. Yesterday and today, which late executions still reach, are
    always read afresh. A result may hold a key twice when its query spans both parts:
    callers add rows up by key.
    """

    def __init__(self, data: str, max_rows: int = 100_000) -> None:
        self.data = data
        self._max_rows = max_rows
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[Any, ...], tuple[int, Rows]] = OrderedDict()
        self._rows = 0

    def rows(self, sql: str, params: tuple[Any, ...], low: int, high: int, step: int) -> Rows:
        """The rows of `sql` for the range [low, high] (in steps of `step` seconds)."""
        recent = int(time.time()) // DAY * DAY - DAY
        out: Rows = []
        if low <= min(high, recent - step):
            out += self._settled(sql, params, low, min(high, recent - step))
        if max(low, recent) <= high:
            out += query_rows(sql, params, max(low, recent), high)
        return out

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._rows = 0

    def _settled(self, sql: str, params: tuple[Any, ...], low: int, high: int) -> Rows:
        # The version is read before the rows: rows newer than it are kept under it at worst,
        # which costs one more query once the version moves, never a stale answer.
        version = versions.current(self.data)
        key = (binding(), sql, params, low, high)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] == version:
                self._entries.move_to_end(key)
                return entry[1]
        rows = query_rows(sql, params, low, high)
        with self._lock:
            old = self._entries.get(key)
            if old is None or old[0] <= version:
                self._drop(key)
                self._entries[key] = (version, rows)
                self._rows += len(rows)
                while self._rows > self._max_rows:
                    self._drop(next(iter(self._entries)))
        return rows

    def _drop(self, key: tuple[Any, ...]) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._rows -= len(entry[1])


SETTLED = SettledRows(versions.AGENT_HISTORY)
