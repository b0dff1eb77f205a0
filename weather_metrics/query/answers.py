"""Answers kept in memory: each keyed on its question and the data version it was computed at.

The version is read from the database (store/versions.py), where every transaction that
changes the data raises it, so a commit made by any process is seen by the next question
asked of any other. Answers are held as JSON text: their size is known exactly, and each
caller gets objects of its own, which it may change without touching the kept answer.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from weather_metrics.store import versions
from weather_metrics.store.db import binding, database

_KEPT = object()  # `_find` read the answer's text from memory


class AnswerCache:
    """A bounded LRU of JSON answers computed from the data named `data` (a data version name).

    One answer per question is kept, that of the newest version seen; `max_bytes` bounds the
    JSON text held.
    """

    def __init__(self, data: str, max_bytes: int) -> None:
        self.data = data
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, tuple[int, str]] = OrderedDict()
        self._bytes = 0

    @property
    def size_bytes(self) -> int:
        """The size of the JSON text held now."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def resize(self, max_bytes: int) -> None:
        """Hold at most `max_bytes` of JSON text from now on (0: keep nothing)."""
        with self._lock:
            self.max_bytes = max_bytes
            self._evict()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def answer(self, question: Hashable, compute: Callable[[], Any]) -> Any:
        """The answer to `question` at the current data version: kept, or computed by `compute` and kept."""
        text, value = self._find(question, compute)
        return json.loads(text) if value is _KEPT else value

    def text(self, question: Hashable, compute: Callable[[], Any]) -> str:
        """`answer` as its compact JSON text, as kept: a web response sends it without decoding it first."""
        return self._find(question, compute)[0]

    def _find(self, question: Hashable, compute: Callable[[], Any]) -> tuple[str, Any]:
        """The answer's JSON text, and the answer itself when it was computed now (else _KEPT)."""
        key = (binding(), question)
        with database.atomic():  # one read snapshot: the version and the figures computed agree
            version = versions.current(self.data)
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None and entry[0] == version:
                    self._entries.move_to_end(key)
                    self.hits += 1
                    return entry[1], _KEPT
            value = compute()
        text = json.dumps(value, separators=(",", ":"))
        self._keep(key, version, text)
        return text, value

    def _keep(self, key: Hashable, version: int, text: str) -> None:
        """Keep one answer per question: the newest version's (a slower reader's older one never replaces it)."""
        with self._lock:
            self.misses += 1
            old = self._entries.get(key)
            if old is not None and old[0] > version:
                return
            self._drop(key)
            if len(text) > self.max_bytes:
                return
            self._entries[key] = (version, text)
            self._bytes += len(text)
            self._evict()

    def _drop(self, key: Hashable) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry[1])

    def _evict(self) -> None:
        while self._bytes > self.max_bytes and self._entries:
            _, (_, text) = self._entries.popitem(last=False)
            self._bytes -= len(text)
