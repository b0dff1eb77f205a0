"""Accepting a POST /v1/events body: validate, de-duplicate, queue, and wait for the commit.

`deliver` and `replay` are shared with the organization surfaces (orgintake.py): every
ingestion path queues on the same writer with the same durability and backpressure.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from weather_metrics.bodies import MalformedJson, parse_json
from weather_metrics.errors import invalid_request, service_unavailable, validation_failed
from weather_metrics.ingest import PendingBatch, event_row, window_problems
from weather_metrics.models import IdempotencyKey
from weather_metrics.stats import iso
from weather_metrics.validation import batch_problems, error_list
from weather_metrics.writer import EventWriter, QueueFull, WriterStopped

MAX_IDEMPOTENCY_KEY = 255


class Unavailable(Exception):
    """The batch was not accepted now (queue full, writer stopped, commit too slow): retry later."""


class Pending(Unavailable):
    """The batch is being committed but its outcome is not known yet: it is likely stored."""


class NotStored(RuntimeError):
    """The database refused the batch itself (a validation gap): a server error, nothing stored."""


class KeyReused(Exception):
    """The Idempotency-Key was already used with a different body."""

    def __init__(self) -> None:
        super().__init__("Idempotency-Key was already used with a different body")


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


def deliver(writer: EventWriter, batch: PendingBatch, ack_on_commit: bool, timeout: float) -> dict[str, Any]:
    """Queue a batch and return its answer: at once, or after its commit when that is promised.

    Raises Unavailable when it was not stored (a 503 for the client) and KeyReused.
    """
    try:
        writer.submit(batch)
    except QueueFull:
        raise Unavailable("The ingestion queue is full; retry later") from None
    except WriterStopped:
        raise Unavailable("The service is shutting down or its writer has stopped; retry later") from None
    # A keyed batch waits for its commit in either mode: only then is its answer known.
    if not ack_on_commit and batch.idempotency_key is None:
        return batch.response
    if not batch.done.wait(timeout):
        if writer.withdraw(batch):
            raise Unavailable(f"Not committed within {timeout:g}s and not stored; retry later")
        # The writer is committing it right now: the outcome is moments away.
        if not batch.done.wait(timeout):
            raise Pending("The commit is taking longer than expected; retry with the same Idempotency-Key")
    if batch.failure is not None:
        raise NotStored(batch.failure)
    if batch.key_conflict:
        raise KeyReused
    assert batch.result is not None
    return batch.result


class EventIntake:
    """The ingestion rules of the service, free of HTTP."""

    def __init__(
        self, writer: EventWriter, settings: dict[str, Any], clock: Callable[[], datetime] | None = None
    ) -> None:
        self.writer = writer
        self.ack_on_commit = settings["ack"] == "commit"
        self.ack_timeout = settings["ack_timeout_seconds"]
        self.retention_days = settings["retention_days"]
        self.idempotency_ttl = settings["idempotency_ttl_hours"] * 3600
        self.retry_after = settings["retry_after_seconds"]
        self._clock = clock or (lambda: datetime.now(UTC))
        # Decoding and validating is pure Python: running one request's at a time costs no
        # throughput under the GIL, and keeps idle-waiting threads from crowding out the
        # writer thread when it needs the GIL back between SQLite statements.
        self.cpu_gate = threading.Lock()

    def accept(self, raw: bytes, idempotency_key: str | None) -> dict[str, Any]:
        """The answer for an accepted request body; raises ApiError otherwise."""
        with self.cpu_gate:
            batch = self._prepare(raw, idempotency_key)
        if isinstance(batch, dict):
            return batch  # the first answer to a repeated Idempotency-Key
        try:
            return deliver(self.writer, batch, self.ack_on_commit, self.ack_timeout)
        except Unavailable as exc:
            raise service_unavailable(str(exc), self.retry_after) from None
        except KeyReused as exc:
            raise invalid_request(str(exc)) from None

    def _prepare(self, raw: bytes, idempotency_key: str | None) -> PendingBatch | dict[str, Any]:
        """The batch to queue, or the answer already given to its Idempotency-Key."""
        try:
            body = parse_json(raw)
        except MalformedJson as exc:
            raise invalid_request(str(exc)) from None
        now = self._clock()
        digest = None
        if idempotency_key is not None:
            problem = check_idempotency_key(idempotency_key)
            if problem:
                raise invalid_request(problem)
            digest = body_hash(body)
            try:
                first = replay(idempotency_key, digest, now, self.idempotency_ttl)
            except KeyReused as exc:
                raise invalid_request(str(exc)) from None
            if first is not None:
                return first

        problems = batch_problems(body)
        if not problems:
            problems = window_problems(body["events"], now, self.retention_days)
        if problems:
            raise validation_failed(error_list(problems))

        received_at = int(now.timestamp())
        return PendingBatch(
            rows=[event_row(event, received_at) for event in body["events"]],
            response={"status": "accepted", "count": len(body["events"]), "timestamp": iso(now)},
            idempotency_key=idempotency_key,
            body_hash=digest,
        )
