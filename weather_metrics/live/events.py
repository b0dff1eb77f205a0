"""Live events: what WebSocket clients are told, written beside the data it reports.

Writers call `record` inside the transaction that stores what the event reports, so an
event exists exactly when its data committed. Every worker process, on every host, reads
the table after commit (see `relay.Relay`; on PostgreSQL a NOTIFY at commit wakes it, see
`wakeup`) and fans each event out to its own sockets: whichever process accepted the
data, every socket of the right room hears of it.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from weather_metrics.core.times import iso
from weather_metrics.live import wakeup
from weather_metrics.store.batches import PendingBatch
from weather_metrics.store.db import database, execute

log = logging.getLogger(__name__)


# Event types of the socket protocol (docs/live-updates.md).
METRIC_INGESTED = "metric_ingested"
ALERT_TRIGGERED = "alert_triggered"
DASHBOARD_UPDATE = "dashboard_update"
PUBLIC_INGESTED = "public_ingested"  # stored per /v1 commit; sent to the public room as metric_ingested
KEEP_SECONDS = 300  # events are kept this long; each process reads them within a poll interval


def record(
    organization_id: str | None, event_type: str, payload: dict[str, Any], team_id: str | None = None, now: int = 0
) -> None:
    """Store one live event; call it inside the write transaction of the data it reports.

    `team_id` limits an alert to the admins and that team's managers; None means admins only.
    """
    execute(
        "INSERT INTO live_events (organization_id, type, team_id, payload, created_at) VALUES (?, ?, ?, ?, ?)",
        (
            organization_id,
            event_type,
            team_id,
            json.dumps(payload, separators=(",", ":")),
            now or int(datetime.now(UTC).timestamp()),
        ),
    )
    wakeup.notify()  # PostgreSQL delivers it at commit: every instance's relay reads the event at once


def batch_recorder(clock: Callable[[], float] | None = None) -> Callable[[list[PendingBatch]], None]:
    """A `write_batches` hook: one live event per stored organization batch and one per /v1 commit."""

    def within(batches: list[PendingBatch]) -> None:
        try:
            with database.atomic():  # a savepoint: the rows commit even if their notice cannot be stored
                notify(batches)
        except Exception:  # noqa: BLE001 - losing a live notice must not lose the data
            log.exception("live events of a commit could not be stored; sockets miss this commit")

    def notify(batches: list[PendingBatch]) -> None:
        now = clock() if clock else datetime.now(UTC).timestamp()
        stamp = iso(datetime.fromtimestamp(now, UTC))
        public = errors = 0
        for batch in batches:
            if not batch.stored:
                continue  # a replay or a refused batch reports nothing new
            if batch.kind is None:
                public += batch.stored
                errors += batch.event_errors()
                continue
            record(batch.organization_id, METRIC_INGESTED, _batch_payload(batch, stamp), now=int(now))
        if public:
            record(None, PUBLIC_INGESTED, {"count": public, "errors": errors, "timestamp": stamp}, now=int(now))

    return within


def _batch_payload(batch: PendingBatch, stamp: str) -> dict[str, Any]:
    """Row counts per user, team tag and metric type: each room shows its own part (see relay)."""
    assert batch.kind is not None
    columns = batch.kind.columns
    user_at = columns.index("user_id")
    team_at = columns.index("team_id") if "team_id" in columns else None
    type_at = columns.index("metric_type") if "metric_type" in columns else None
    counts: Counter[tuple[str | None, str | None, str]] = Counter(
        (
            row[user_at],
            None if team_at is None else row[team_at],
            "agent_execution" if type_at is None else row[type_at],
        )
        for row in batch.rows
    )
    return {
        "batch_id": batch.response.get("batch_id"),
        "parts": [[user, team, kind, count] for (user, team, kind), count in counts.items()],
        "timestamp": stamp,
    }
