"""Token-bucket rate limiting per client, shared by every thread of the server process (see shared_ratelimit.py)."""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections import OrderedDict
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


def decision(capacity: int, rate: float, cost: int, allowed: bool, tokens: float, now: float) -> Decision:
    """What a hit of `cost` that left `tokens` in the bucket at `now` answers (the headers' figures)."""
    reset_at = now + (capacity - tokens) / rate
    retry_after = 0 if allowed else max(1, math.ceil((cost - tokens) / rate))
    return Decision(allowed, capacity, int(tokens), math.ceil(reset_at), retry_after)


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
        # key -> (tokens, updated_at), least recently seen first
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def hit(self, key: str, cost: int = 1) -> Decision:
        """Take `cost` tokens for `key` if it has them (a cost above a full bucket counts as a full bucket)."""
        cost = max(1, min(cost, self.capacity))
        now = self._clock()
        with self._lock:
            tokens, updated = self._buckets.get(key, (float(self.capacity), now))
            tokens = min(self.capacity, tokens + (now - updated) * self.rate)
            allowed = tokens >= cost
            if allowed:
                tokens -= cost
            self._buckets[key] = (tokens, now)
            self._buckets.move_to_end(key)
            if len(self._buckets) > self._max_clients:
                self._evict(now)
        return decision(self.capacity, self.rate, cost, allowed, tokens, now)

    def _evict(self, now: float) -> None:
        """Forget one of the least recently seen clients: the one closest to a full bucket.

        A full bucket holds no state worth keeping; an exhausted one is kept as long as
        possible, so flooding the table with new addresses does not reset it.
        """
        oldest = list(itertools.islice(self._buckets.items(), 8))
        victim = max(oldest, key=lambda item: item[1][0] + (now - item[1][1]) * self.rate)[0]
        del self._buckets[victim]
