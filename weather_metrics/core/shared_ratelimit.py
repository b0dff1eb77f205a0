"""The /v1 token buckets in Redis, so that every process and host of a service spends one allowance per client.

The figures are ratelimit.TokenBucketLimiter's: one Lua script takes the tokens atomically,
with Redis's clock (hosts whose clocks differ still agree) and an expiry at the moment the
bucket would be full again, when a missing key means the same thing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from weather_metrics.core.ratelimit import Decision, TokenBucketLimiter, decision

log = logging.getLogger(__name__)

# KEYS[1] the bucket; ARGV capacity, refill per second, cost. Returns allowed, tokens left, Redis's now.
TAKE_TOKENS = """
local capacity, rate, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local kept = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(kept[1]) or capacity
local updated = tonumber(kept[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - updated) * rate)
local allowed = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'updated', string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate * 1000) + 1000)
return {allowed, string.format('%.17g', tokens), string.format('%.6f', now)}
"""


def redis_client(url: str) -> redis.Redis:
    """A client that gives up quickly: a request must not wait long on a limiter's store."""
    return redis.Redis.from_url(url, **REDIS_OPTIONS)


# Half a second to connect or answer, and one immediate retry (a pooled connection Redis closed on restart).
REDIS_OPTIONS: dict[str, Any] = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5, "retry": Retry(NoBackoff(), 1)}


class SharedTokenBucketLimiter:
    """TokenBucketLimiter's buckets kept in Redis under `prefix`.

    While Redis fails, this process's own buckets (`fallback`) decide, and Redis is tried
    again after `retry_seconds`: the limits then hold per process, and ingestion goes on.
    """

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        fallback: TokenBucketLimiter,
        on_fallback: Callable[[], None] = lambda: None,
        retry_seconds: float = 5.0,
    ) -> None:
        self.capacity, self.rate = fallback.capacity, fallback.rate
        self.fallback = fallback
        self._client = client
        self._script = client.register_script(TAKE_TOKENS)
        self._prefix = prefix
        self._on_fallback = on_fallback
        self._retry_seconds = retry_seconds
        self._down_until = 0.0  # monotonic time before which Redis is not tried; 0 while it answers

    def hit(self, key: str, cost: int = 1) -> Decision:
        """Take `cost` tokens for `key` in Redis, or in this process while Redis fails."""
        cost = max(1, min(cost, self.capacity))
        if self._down_until and time.monotonic() < self._down_until:
            self._on_fallback()
            return self.fallback.hit(key, cost)
        try:
            allowed, tokens, now = self._script(keys=[f"{self._prefix}:{key}"], args=[self.capacity, self.rate, cost])
        except RedisError as exc:
            if not self._down_until:
                log.warning("rate-limit store unreachable, /v1 limits count per process until it answers: %s", exc)
            self._down_until = time.monotonic() + self._retry_seconds
            self._on_fallback()
            return self.fallback.hit(key, cost)
        if self._down_until:
            log.warning("rate-limit store answers again, /v1 limits count across processes")
            self._down_until = 0.0
        return decision(self.capacity, self.rate, cost, bool(allowed), float(tokens), float(now))

    def check(self) -> None:
        """Raise RedisError unless Redis answers (at start: a service should not start counting alone unseen)."""
        self._client.ping()
