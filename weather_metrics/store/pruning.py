"""Pruning: raw rows past `retention_days`, rollups past `rollup_retention_days`, old Idempotency-Keys.

The writer runs `prune_step` between commits, so ingestion never waits long behind a prune.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from weather_metrics.core.times import DAY, HOUR
from weather_metrics.store import versions
from weather_metrics.store.agents import (
    AgentDaily,
    AgentExecution,
    AgentHourly,
    AgentLatencyDaily,
    AgentLatencySpans,
    AgentTotalHourly,
    AgentUserDaily,
    AgentUserHourly,
    AgentUserLatencyDaily,
    AgentUserLatencySpans,
)
from weather_metrics.store.db import execute, write_transaction
from weather_metrics.store.events import (
    CountryDaily,
    ErrorDaily,
    Event,
    LastSeenDaily,
    LatencyDaily,
    ServiceDaily,
    Session,
    ToolDaily,
    ToolHourly,
    ToolLatencyDaily,
    ToolLatencySpans,
    VersionDaily,
)
from weather_metrics.store.models import IdempotencyKey
from weather_metrics.store.productivity import ProductivityHourly, ProductivityMetric
from weather_metrics.store.team_rollups import AgentTeamDaily, AgentTeamLatencyDaily, AgentTeamLatencySpans

# Every table read for figures, past `rollup_retention_days`, with the data version it counts in.
ROLLUPS: tuple[tuple[str, Any, str], ...] = (
    *((versions.EVENTS, model, "hour") for model in (ToolHourly,)),
    *((versions.EVENTS, model, "day") for model in (ToolDaily, LatencyDaily, VersionDaily, CountryDaily, ServiceDaily)),
    (versions.EVENTS, ToolLatencyDaily, "day"),
    # A span goes once it lies wholly before the cutoff (its "end"). No period reaches before
    # the cutoff (the longest is 90 days, rollup_retention_days at least 90), so none reads a
    # span it straddles.
    (versions.EVENTS, ToolLatencySpans, "end"),
    (versions.EVENTS, ErrorDaily, "day"),
    # Sessions go by their last_seen and the cutoff is a midnight, so last_seen_daily loses
    # exactly the days of the sessions that go.
    (versions.EVENTS, Session, "last_seen"),
    (versions.EVENTS, LastSeenDaily, "day"),
    *((versions.AGENT_EXECUTIONS, model, "hour") for model in (AgentHourly, AgentTotalHourly, AgentUserHourly)),
    *((versions.AGENT_EXECUTIONS, model, "day") for model in (AgentLatencyDaily, AgentUserLatencyDaily)),
    *((versions.AGENT_EXECUTIONS, model, "day") for model in (AgentDaily, AgentUserDaily)),
    *((versions.AGENT_EXECUTIONS, model, "day") for model in (AgentTeamDaily, AgentTeamLatencyDaily)),
    # A span goes once it lies wholly before the cutoff (its "end"), likewise.
    *(
        (versions.AGENT_EXECUTIONS, model, "end")
        for model in (AgentLatencySpans, AgentUserLatencySpans, AgentTeamLatencySpans)
    ),
    (versions.PRODUCTIVITY_METRICS, ProductivityHourly, "hour"),
)


def prune_step(
    now: datetime, retention_days: int, rollup_retention_days: int, idempotency_ttl_hours: int, chunk: int = 20_000
) -> tuple[int, bool]:
    """One short transaction of pruning; returns rows deleted and whether more remain.

    The writer interleaves steps with commits, so ingestion never waits long behind a
    large prune (after `retention_days` is lowered, say).
    """
    event_cutoff = int((now - timedelta(days=retention_days)).timestamp()) // HOUR * HOUR
    deleted = 0
    for model, before, name in RAW:
        with write_transaction():
            doomed = before(event_cutoff, chunk)
            removed = model.delete().where(model.id.in_(doomed)).execute() if doomed else 0
            if removed:
                versions.bump([name])
        deleted += removed
        if removed == chunk:
            return deleted, True
    rollup_cutoff = int((now - timedelta(days=rollup_retention_days)).timestamp()) // DAY * DAY
    key_cutoff = int((now - timedelta(hours=idempotency_ttl_hours)).timestamp())
    with write_transaction():
        dropped = 0
        changed = set()
        for name, model, column in ROLLUPS:
            if column == "end":
                doomed = model.start + model.span * DAY <= rollup_cutoff
            else:
                doomed = getattr(model, column) < rollup_cutoff
            removed = model.delete().where(doomed).execute()
            if removed:
                changed.add(name)
                changed.add(versions.AGENT_HISTORY if name == versions.AGENT_EXECUTIONS else name)
                dropped += removed
        deleted += dropped
        deleted += IdempotencyKey.delete().where(IdempotencyKey.created_at < key_cutoff).execute()
        versions.bump(changed)
    return deleted, False


def _hour_index(model: Any) -> Callable[[int, int], list[int]]:
    """Ids of up to `chunk` rows of `model` whose hour is before `cutoff`, through the index of its hours."""

    def before(cutoff: int, chunk: int) -> list[int]:
        return [i for (i,) in model.select(model.id).where(model.hour < cutoff).limit(chunk).tuples()]

    return before


LATE = DAY  # an event whose hour is more than this before it arrived is late: schema.sql's events_late holds it
ARRIVAL_SKEW = HOUR  # how much earlier than an older id's an event's received_at may be (queues, hosts' clocks)
# Late events before a cutoff, from an id on. The condition is events_late's, so the index can
# serve; the order is its own, so PostgreSQL walks it even for a few rows of a table it has not
# ANALYZEd yet, where without it a small LIMIT made a sequential scan look cheaper.
LATE_EVENTS = (
    "SELECT id FROM events WHERE timestamp_hour < received_at - 86400"
    " AND timestamp_hour < ? AND id >= ? ORDER BY timestamp_hour LIMIT ?"
)


def _events_before(cutoff: int, chunk: int) -> list[int]:
    """Ids of up to `chunk` events whose hour is before `cutoff`, found without an index on every event's hour.

    The events table has no such index: keeping one cost the writer about 40% of each raw
    INSERT. Ids follow arrival (`received_at`) up to ARRIVAL_SKEW, and an event arrives at most
    LATE after its hour unless it is late. So an event before `cutoff` either lies below the
    first id that arrived after `cutoff + LATE` (a range of ids, scanned from the oldest) or is
    late (the partial index events_late, which holds late events only).
    """
    bound = _first_id_arrived_from(cutoff + LATE + ARRIVAL_SKEW)
    ids = [
        i
        for (i,) in execute(
            "SELECT id FROM events WHERE id < ? AND timestamp_hour < ? ORDER BY id LIMIT ?", (bound, cutoff, chunk)
        )
    ]
    if len(ids) < chunk:
        ids += [i for (i,) in execute(LATE_EVENTS, (cutoff, bound, chunk - len(ids)))]
    return ids


def _first_id_arrived_from(moment: int) -> int:
    """An id from which on every event arrived at `moment - ARRIVAL_SKEW` or later (one past the last id if none).

    A binary search over ids, each step reading the first event at or after an id: any id
    whose event arrived at `moment` or later will do, as events after it arrived at most
    ARRIVAL_SKEW before it.
    """
    low, high = execute("SELECT MIN(id), MAX(id) FROM events").fetchone()
    if low is None:
        return 0
    low, above = int(low) - 1, int(high) + 1  # low: an id before the answer; above: an id that will do
    while above - low > 1:
        middle = (low + above) // 2
        found, arrived = execute(
            "SELECT id, received_at FROM events WHERE id >= ? ORDER BY id LIMIT 1", (middle,)
        ).fetchone()
        if arrived >= moment:
            above = middle  # no event between middle and found
        else:
            low = found
    return above


# Each table of raw rows, how its rows before a cutoff are found, and the data version it counts in.
RAW: tuple[tuple[Any, Callable[[int, int], list[int]], str], ...] = (
    (Event, _events_before, versions.EVENTS),
    (AgentExecution, _hour_index(AgentExecution), versions.AGENT_EXECUTIONS),
    (ProductivityMetric, _hour_index(ProductivityMetric), versions.PRODUCTIVITY_METRICS),
)


def prune(now: datetime, retention_days: int, rollup_retention_days: int, idempotency_ttl_hours: int) -> int:
    """Delete everything past its retention; returns rows deleted."""
    total, more = 0, True
    while more:
        deleted, more = prune_step(now, retention_days, rollup_retention_days, idempotency_ttl_hours)
        total += deleted
    return total
