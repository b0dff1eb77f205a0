"""Pruning: raw rows past `retention_days`, rollups past `rollup_retention_days`, old Idempotency-Keys.

The writer runs `prune_step` between commits, so ingestion never waits long behind a prune.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from weather_metrics.core.times import DAY, HOUR
from weather_metrics.store.agents import (
    AgentExecution,
    AgentHourly,
    AgentLatencyDaily,
    AgentUserHourly,
    AgentUserLatencyDaily,
)
from weather_metrics.store.db import write_transaction
from weather_metrics.store.events import (
    WEEK,
    CountryDaily,
    ErrorDaily,
    Event,
    LatencyDaily,
    ServiceDaily,
    Session,
    ToolHourly,
    ToolLatencyDaily,
    ToolLatencyWeekly,
    VersionDaily,
)
from weather_metrics.store.models import IdempotencyKey
from weather_metrics.store.productivity import ProductivityHourly, ProductivityMetric


def prune_step(
    now: datetime, retention_days: int, rollup_retention_days: int, idempotency_ttl_hours: int, chunk: int = 20_000
) -> tuple[int, bool]:
    """One short transaction of pruning; returns rows deleted and whether more remain.

    The writer interleaves steps with commits, so ingestion never waits long behind a
    large prune (after `retention_days` is lowered, say).
    """
    event_cutoff = int((now - timedelta(days=retention_days)).timestamp()) // HOUR * HOUR
    deleted = 0
    raw: tuple[tuple[Any, Any], ...] = (
        (Event, Event.timestamp_hour),
        (AgentExecution, AgentExecution.hour),
        (ProductivityMetric, ProductivityMetric.hour),
    )
    for model, hour in raw:
        with write_transaction():
            doomed = model.select(model.id).where(hour < event_cutoff).limit(chunk)
            removed = model.delete().where(model.id.in_(doomed)).execute()
        if removed and model is AgentExecution:
            _forget_settled()  # new rows may now reuse the pruned ids the cache keys on
        deleted += removed
        if removed == chunk:
            return deleted, True
    rollup_cutoff = int((now - timedelta(days=rollup_retention_days)).timestamp()) // DAY * DAY
    key_cutoff = int((now - timedelta(hours=idempotency_ttl_hours)).timestamp())
    hourly: tuple[Any, ...] = (ToolHourly, AgentHourly, AgentUserHourly, ProductivityHourly)
    daily: tuple[Any, ...] = (
        LatencyDaily,
        ToolLatencyDaily,
        VersionDaily,
        CountryDaily,
        ServiceDaily,
        ErrorDaily,
        AgentLatencyDaily,
        AgentUserLatencyDaily,
    )
    with write_transaction():
        dropped = 0
        for model in hourly:
            dropped += model.delete().where(model.hour < rollup_cutoff).execute()
        for model in daily:
            dropped += model.delete().where(model.day < rollup_cutoff).execute()
        # A block goes once its last day does. No period reaches before the cutoff (the longest
        # is 90 days, rollup_retention_days at least 90), so none reads a block it straddles.
        dropped += ToolLatencyWeekly.delete().where(ToolLatencyWeekly.week + WEEK <= rollup_cutoff).execute()
        deleted += dropped
        deleted += Session.delete().where(Session.last_seen < rollup_cutoff).execute()
        deleted += IdempotencyKey.delete().where(IdempotencyKey.created_at < key_cutoff).execute()
    if dropped:
        _forget_settled()
    return deleted, False


def _forget_settled() -> None:
    """Clear cached agent query results: pruning changed rows the cache assumed fixed."""
    from weather_metrics.query.org_metrics import SETTLED

    SETTLED.clear()


def prune(now: datetime, retention_days: int, rollup_retention_days: int, idempotency_ttl_hours: int) -> int:
    """Delete everything past its retention; returns rows deleted."""
    total, more = 0, True
    while more:
        deleted, more = prune_step(now, retention_days, rollup_retention_days, idempotency_ttl_hours)
        total += deleted
    return total
