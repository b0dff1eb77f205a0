"""Idempotency-Key rules shared by every ingestion surface: the key's form, the body's hash, the first answer."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from weather_metrics.core.errors import KeyReused
from weather_metrics.store.models import IdempotencyKey

MAX_IDEMPOTENCY_KEY = 255


def check_idempotency_key(key: str) -> str | None:
    """What is wrong with an Idempotency-Key header, or None."""
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not key.isprintable():
        return f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} printable characters"
    return None


def body_hash(body: Any) -> str:
    """A hash of the JSON value, not the bytes: a retry may re-serialize the same body."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def replay(key: str, digest: str, now: datetime, ttl: int) -> dict[str, Any] | None:
    """The first answer for a key seen within the TTL, if any; KeyReused for another body."""
    seen = IdempotencyKey.get_or_none(IdempotencyKey.key == key)
    if seen is None or seen.created_at < now.timestamp() - ttl:
        return None
    if seen.body_hash != digest:
        raise KeyReused
    return json.loads(seen.response)  # type: ignore[no-any-return]
