"""Delivering a batch to the writer: at once, or after its commit when that is promised.

Shared by every ingestion path, so all queue on the same writer with the same durability
and back-pressure.
"""

from __future__ import annotations

from typing import Any

from weather_metrics.core.errors import KeyReused, NotStored, Pending, Unavailable
from weather_metrics.store.batches import PendingBatch
from weather_metrics.store.writer import EventWriter, QueueFull, WriterStopped


def deliver(writer: EventWriter, batch: PendingBatch, ack_on_commit: bool, timeout: float) -> dict[str, Any]:
    """Queue a batch and return its answer: at once, or after its commit when that is promised.

    Raises Unavailable when it was not stored (a 503 for the client) and KeyReused.
    """
    submit(writer, batch)
    # A keyed batch waits for its commit in either mode: only then is its answer known.
    if not ack_on_commit and batch.idempotency_key is None:
        return batch.response
    if not batch.done.wait(timeout):
        if writer.withdraw(batch):
            raise not_committed(timeout)
        # The writer is committing it right now: the outcome is moments away.
        if not batch.done.wait(timeout):
            raise still_pending()
    return outcome(batch)


def submit(writer: EventWriter, batch: PendingBatch) -> None:
    """Queue a batch without waiting for it; Unavailable when the writer cannot take it now."""
    try:
        writer.submit(batch)
    except QueueFull:
        raise Unavailable("The ingestion queue is full; retry later") from None
    except WriterStopped:
        raise Unavailable("The service is shutting down or its writer has stopped; retry later") from None


def outcome(batch: PendingBatch) -> dict[str, Any]:
    """A committed batch's answer; NotStored or KeyReused when the commit refused it."""
    if batch.failure is not None:
        raise NotStored(batch.failure)
    if batch.key_conflict:
        raise KeyReused
    assert batch.result is not None
    return batch.result


def not_committed(timeout: float) -> Unavailable:
    """The error for a batch taken back from the queue after waiting `timeout` seconds for its commit."""
    return Unavailable(f"Not committed within {timeout:g}s and not stored; retry later")


def still_pending() -> Pending:
    """The error for a batch whose commit began but has not ended after a second wait."""
    return Pending("The commit is taking longer than expected; retry with the same Idempotency-Key")
