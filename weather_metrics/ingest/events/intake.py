"""Accepting a POST /v1/events body: validate, de-duplicate, queue, and wait for the commit.

`deliver` (ingest/delivery.py) and `replay` (ingest/idempotency.py) are shared with the
organization surfaces: every ingestion path queues on the same writer with the same
durability and backpressure.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from weather_metrics.core.errors import InvalidBatch, KeyReused
from weather_metrics.core.strictjson import MalformedJson, parse_json
from weather_metrics.core.times import HOUR, iso
from weather_metrics.ingest.delivery import deliver
from weather_metrics.ingest.events.compiled import accepted_rows
from weather_metrics.ingest.events.validation import batch_problems, error_list, window_problems
from weather_metrics.ingest.idempotency import body_hash, check_idempotency_key, replay
from weather_metrics.store.batches import PendingBatch
from weather_metrics.store.events import event_row
from weather_metrics.store.writer import EventWriter


class EventIntake:
    """The ingestion rules of the service, free of HTTP."""

    def __init__(
        self, writer: EventWriter, settings: dict[str, Any], clock: Callable[[], datetime] | None = None
    ) -> None:
        self.writer = writer
        self.ack_on_commit = settings["ack"] == "commit"
        self.ack_timeout = settings["ack_timeout_seconds"]
        self.retention_days = settings["retention_days"]
        self.idempotency_ttl = settings["idempotency_ttl_hours"] * HOUR
        self._clock = clock or (lambda: datetime.now(UTC))
        # Decoding and validating is pure Python: running one request's at a time costs no
        # throughput under the GIL, and keeps idle-waiting threads from crowding out the
        # writer thread when it needs the GIL back between SQLite statements.
        self.cpu_gate = threading.Lock()

    def accept(self, raw: bytes, idempotency_key: str | None) -> dict[str, Any]:
        """The answer for an accepted request body; InvalidBatch, or Unavailable when it was not stored."""
        with self.cpu_gate:
            batch = self._prepare(raw, idempotency_key)
        if isinstance(batch, dict):
            return batch  # the first answer to a repeated Idempotency-Key
        try:
            return deliver(self.writer, batch, self.ack_on_commit, self.ack_timeout)
        except KeyReused as exc:
            raise InvalidBatch(str(exc)) from None

    def accept_plain(self, raw: bytes) -> dict[str, Any] | None:
        """The answer for a body without an Idempotency-Key that the compiled path accepts; None for any
        other body, which `accept` then judges. Raises Unavailable, as `accept` does, when it was not stored."""
        batch = self.plain_batch(raw)
        return None if batch is None else deliver(self.writer, batch, self.ack_on_commit, self.ack_timeout)

    def plain_batch(self, raw: bytes, wait: bool = True) -> PendingBatch | None:
        """The batch of a body without an Idempotency-Key that the compiled path accepts, not yet queued;
        None for any other body. The server's event loop (runtime/loop_answers.py) queues it itself, and
        never waits for the gate: None when a thread holds it (an organization's upload, a keyed batch's
        replay read), and a thread then takes the request."""
        if not self.cpu_gate.acquire(blocking=wait):
            return None
        try:
            return self._compiled(raw, self._clock())
        finally:
            self.cpu_gate.release()

    def _compiled(self, raw: bytes, now: datetime) -> PendingBatch | None:
        rows = accepted_rows(raw, now, self.retention_days, int(now.timestamp()))
        return None if rows is None else PendingBatch(rows=rows, response=_accepted(len(rows), now))

    def _prepare(self, raw: bytes, idempotency_key: str | None) -> PendingBatch | dict[str, Any]:
        """The batch to queue, or the answer already given to its Idempotency-Key.

        A body without a key takes the compiled path first (ingest/events/compiled.py);
        one it does not accept is judged here, where every problem gets its message.
        """
        now = self._clock()
        received_at = int(now.timestamp())
        if idempotency_key is None:
            batch = self._compiled(raw, now)
            if batch is not None:
                return batch
        try:
            body = parse_json(raw)
        except MalformedJson as exc:
            raise InvalidBatch(str(exc)) from None
        digest = None
        if idempotency_key is not None:
            problem = check_idempotency_key(idempotency_key)
            if problem:
                raise InvalidBatch(problem)
            digest = body_hash(body)
            try:
                first = replay(idempotency_key, digest, now, self.idempotency_ttl)
            except KeyReused as exc:
                raise InvalidBatch(str(exc)) from None
            if first is not None:
                return first

        problems = batch_problems(body)
        if not problems:
            problems = window_problems(body["events"], now, self.retention_days)
        if problems:
            raise InvalidBatch("validation failed", error_list(problems))

        return PendingBatch(
            rows=[event_row(event, received_at) for event in body["events"]],
            response=_accepted(len(body["events"]), now),
            idempotency_key=idempotency_key,
            body_hash=digest,
        )


def _accepted(count: int, now: datetime) -> dict[str, Any]:
    return {"status": "accepted", "count": count, "timestamp": iso(now)}
