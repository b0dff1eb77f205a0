"""Token-bucket rate limiting per client, shared by every thread of the server process."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: int  # Unix time when the bucket is full again
    retry_after: int  # seconds until one request is allowed (0 when allowed)

    def headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(self.remaining),
            "x-ratelimit-reset": str(self.reset_at),
        }


class TokenBucketLimiter:
    """`per_minute` requests a minute on average; a quiet client may send `burst` more at once.

    A bucket holds per_minute + burst tokens and refills at per_minute a minute.
    """

    def __init__(
        self, per_minute: int, burst: int, clock: Callable[[], float] = time.time, max_clients: int = 100_000
    ) -> None:
        self.capacity = per_minute + burst
        self.rate = per_minute / 60.0
        self._clock = clock
        self._max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, updated_at)
        self._lock = threading.Lock()

    def hit(self, key: str) -> Decision:
        """Take one token for `key` if there is one."""
        now = self._clock()
        with self._lock:
            tokens, updated = self._buckets.get(key, (float(self.capacity), now))
            tokens = min(self.capacity, tokens + (now - updated) * self.rate)
            allowed = tokens >= 1
            if allowed:
                tokens -= 1
            if len(self._buckets) >= self._max_clients and key not in self._buckets:
                self._forget_full(now)
            self._buckets[key] = (tokens, now)
        reset_at = now + (self.capacity - tokens) / self.rate
        retry_after = 0 if allowed else max(1, math.ceil((1 - tokens) / self.rate))
        return Decision(allowed, self.capacity, int(tokens), math.ceil(reset_at), retry_after)

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled: they hold no state worth keeping."""
        full_after = self.capacity / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}
