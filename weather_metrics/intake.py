"""Accepting a POST /v1/events body: validate, de-duplicate, queue, and wait for the commit."""

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
        self._cpu_gate = threading.Lock()

    def accept(self, raw: bytes, idempotency_key: str | None) -> dict[str, Any]:
        """The answer for an accepted request body; raises ApiError otherwise."""
        with self._cpu_gate:
            batch = self._prepare(raw, idempotency_key)
        if isinstance(batch, dict):
            return batch  # the first answer to a repeated Idempotency-Key
        try:
            self.writer.submit(batch)
        except QueueFull:
            raise service_unavailable("Event queue is full; retry later", self.retry_after) from None
        except WriterStopped:
            raise service_unavailable(
                "The service is shutting down or its writer has stopped; retry later", self.retry_after
            ) from None
        # A keyed batch waits for its commit in either mode: only then is its answer known.
        if not self.ack_on_commit and batch.idempotency_key is None:
            return batch.response
        return self._await_commit(batch)

    def _prepare(self, raw: bytes, idempotency_key: str | None) -> PendingBatch | dict[str, Any]:
        """The batch to queue, or the answer already given to its Idempotency-Key."""
        try:
            body = parse_json(raw)
        except MalformedJson as exc:
            raise invalid_request(str(exc)) from None
        now = self._clock()
        body_hash = None
        if idempotency_key is not None:
            if not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY or not idempotency_key.isprintable():
                raise invalid_request(f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} printable characters")
            # Hash the JSON, not the bytes: a retry may re-serialize the same batch.
            canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=True)
            body_hash = hashlib.sha256(canonical.encode()).hexdigest()
            replay = self._replay(idempotency_key, body_hash, now)
            if replay is not None:
                return replay

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
            body_hash=body_hash,
        )

    def _replay(self, key: str, body_hash: str, now: datetime) -> dict[str, Any] | None:
        """The first answer for a key seen within the TTL, if any."""
        seen = IdempotencyKey.get_or_none(IdempotencyKey.key == key)
        if seen is None or seen.created_at < now.timestamp() - self.idempotency_ttl:
            return None
        if seen.body_hash != body_hash:
            raise invalid_request("Idempotency-Key was already used with a different body")
        return json.loads(seen.response)

    def _await_commit(self, batch: PendingBatch) -> dict[str, Any]:
        if not batch.done.wait(self.ack_timeout):
            if self.writer.withdraw(batch):
                raise service_unavailable(
                    f"Events were not committed within {self.ack_timeout:g}s and were not stored; retry later",
                    self.retry_after,
                )
            # The writer is committing it right now: the outcome is moments away.
            if not batch.done.wait(self.ack_timeout):
                raise service_unavailable(
                    "The commit is taking longer than expected; retry with the same Idempotency-Key",
                    self.retry_after,
                )
        if batch.key_conflict:
            raise invalid_request("Idempotency-Key was already used with a different body")
        assert batch.result is not None
        return batch.result
