"""What logs may show: request lines with the values of credential parameters redacted, and sampled lines."""

from __future__ import annotations

import threading
from collections import OrderedDict
from urllib.parse import parse_qsl, urlencode

SECRET_PARAMETERS = frozenset({"token", "access_token", "ticket"})


def redact_query(query: str) -> str:
    """The query string with the values of credential parameters replaced (names are compared decoded)."""
    if not query:
        return query
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(name in SECRET_PARAMETERS for name, _ in pairs):
        return query
    return urlencode([(k, "[redacted]" if k in SECRET_PARAMETERS else v) for k, v in pairs], safe="[]/:,")


class Sampler:
    """At most `per_minute` lines a minute for each key (a client address); the rest are counted, not logged.

    Bounded: it forgets the least recently seen keys beyond `max_keys`.
    """

    def __init__(self, per_minute: int = 3, max_keys: int = 10_000) -> None:
        self.per_minute = per_minute
        self.max_keys = max_keys
        self._seen: OrderedDict[str, tuple[int, int, int]] = OrderedDict()  # key -> (minute, logged, skipped)
        self._lock = threading.Lock()

    def allow(self, key: str, now: float) -> int | None:
        """None when this line is skipped; else how many of the key's lines were skipped before it."""
        minute = int(now // 60)
        with self._lock:
            seen_minute, logged, skipped = self._seen.pop(key, (minute, 0, 0))
            if seen_minute != minute:
                logged = 0
            if logged >= self.per_minute:
                self._seen[key] = (minute, logged, skipped + 1)
                return None
            self._seen[key] = (minute, logged + 1, 0)
            while len(self._seen) > self.max_keys:
                self._seen.popitem(last=False)
            return skipped
