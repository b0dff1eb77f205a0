"""Pruning: raw rows past `retention_days`, rollups past `rollup_retention_days`, old Idempotency-Keys.

The writer runs `prune_step` between commits, so ingestion never waits long behind a prune.
"""

from __future__ import annotations

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
from weather_metrics.store.db import write_transaction
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
    raw: tuple[tuple[Any, Any, str], ...] = (
        (Event, Event.timestamp_hour, versions.EVENTS),
        (AgentExecution, AgentExecution.hour, versions.AGENT_EXECUTIONS),
        (ProductivityMetric, ProductivityMetric.hour, versions.PRODUCTIVITY_METRICS),
    )
    for model, hour, name in raw:
        with write_transaction():
            doomed = model.select(model.id).where(hour < event_cutoff).limit(chunk)
            removed = model.delete().where(model.id.in_(doomed)).execute()
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


def prune(now: datetime, retention_days: int, rollup_retention_days: int, idempotency_ttl_hours: int) -> int:
    """Delete everything past its retention; returns rows deleted."""
    total, more = 0, True
    while more:
        deleted, more = prune_step(now, retention_days, rollup_retention_days, idempotency_ttl_hours)
        total += deleted
    return total
