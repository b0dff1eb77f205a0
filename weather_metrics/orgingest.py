"""Organization metrics on their way in: rows, and the rollups each commit updates.

Agent executions (from /mcp/metrics/collect and POST /api/metrics/agents) and productivity
metrics (POST /api/metrics/productivity) go through the same writer as /v1 events: each is
a `RowKind` that `ingest.write_batches` appends and folds into its rollups in the commit.

Validation is in orgvalidation.py.
"""

from __future__ import annotations

from typing import Any

from peewee import EXCLUDED, Case, fn

from weather_metrics.histogram import latency_bucket
from weather_metrics.ingest import DAY, HOUR, SINCE, RowKind
from weather_metrics.models import (
    AgentExecution,
    AgentHourly,
    AgentLatencyDaily,
    AgentUserHourly,
    AgentUserLatencyDaily,
    ProductivityHourly,
    ProductivityMetric,
)
from weather_metrics.orgvalidation import dump_json
from weather_metrics.validation import parse_timestamp


def _moment(item: dict[str, Any]) -> float:
    moment = parse_timestamp(item["timestamp"])
    assert moment is not None  # validated before
    return moment.timestamp()


AGENT_COLUMNS = (
    "organization_id",
    "batch_id",
    "received_at",
    "occurred_at",
    "hour",
    "session_id",
    "user_id",
    "user_identifier",
    "agent_name",
    "command",
    "duration_ms",
    "latency_bucket",
    "success",
    "error_details",
    "metadata",
)


def agent_row(
    org_id: str, batch_id: str, received_at: int, item: dict[str, Any], user_id: str | None, text: str | None = None
) -> tuple:
    """The agent_executions row of one validated execution."""
    occurred = _moment(item)
    duration = item["execution_time_ms"]
    metadata = item.get("metadata")
    return (
        org_id,
        batch_id,
        received_at,
        occurred,
        int(occurred) // HOUR * HOUR,
        item.get("session_id"),
        user_id,
        item.get("user_identifier"),
        item["agent_name"],
        item["command"],
        float(duration),
        latency_bucket(duration),
        1 if item["success"] else 0,
        item.get("error_details"),
        text if text is not None or metadata is None else dump_json(metadata),
    )


PRODUCTIVITY_COLUMNS = (
    "organization_id",
    "batch_id",
    "received_at",
    "occurred_at",
    "hour",
    "metric_type",
    "value",
    "user_id",
    "team_id",
    "metadata",
)


def productivity_row(
    org_id: str, batch_id: str, received_at: int, item: dict[str, Any], text: str | None = None
) -> tuple:
    """The productivity_metrics row of one validated metric."""
    occurred = _moment(item)
    metadata = item.get("metadata")
    return (
        org_id,
        batch_id,
        received_at,
        occurred,
        int(occurred) // HOUR * HOUR,
        item["type"],
        float(item["value"]),
        item.get("user_id"),
        item.get("team_id"),
        text if text is not None or metadata is None else dump_json(metadata),
    )


def _add(model: Any, *names: str) -> dict[Any, Any]:
    return {getattr(model, n): getattr(model, n) + getattr(EXCLUDED, n) for n in names}


def _agent_rollups() -> list[Any]:
    a = AgentExecution
    new = a.id > SINCE
    hour = a.hour + 0  # `+ 0`: stay on the rowid range (see ingest._rollup_queries)
    day = a.hour / DAY * DAY
    user = new & a.user_id.is_null(False)
    calls = fn.COUNT(a.id)
    total = fn.SUM(a.duration_ms)
    return [
        AgentHourly.insert_from(
            a.select(a.organization_id, hour, a.agent_name, a.success, calls, total)
            .where(new)
            .group_by(a.organization_id, hour, a.agent_name, a.success),
            fields=[
                AgentHourly.organization_id,
                AgentHourly.hour,
                AgentHourly.agent_name,
                AgentHourly.success,
                AgentHourly.calls,
                AgentHourly.duration_sum,
            ],
        ).on_conflict(
            conflict_target=[
                AgentHourly.organization_id,
                AgentHourly.hour,
                AgentHourly.agent_name,
                AgentHourly.success,
            ],
            update=_add(AgentHourly, "calls", "duration_sum"),
        ),
        AgentUserHourly.insert_from(
            a.select(a.user_id, hour, a.agent_name, a.success, calls, total)
            .where(user)
            .group_by(a.user_id, hour, a.agent_name, a.success),
            fields=[
                AgentUserHourly.user_id,
                AgentUserHourly.hour,
                AgentUserHourly.agent_name,
                AgentUserHourly.success,
                AgentUserHourly.calls,
                AgentUserHourly.duration_sum,
            ],
        ).on_conflict(
            conflict_target=[
                AgentUserHourly.user_id,
                AgentUserHourly.hour,
                AgentUserHourly.agent_name,
                AgentUserHourly.success,
            ],
            update=_add(AgentUserHourly, "calls", "duration_sum"),
        ),
        AgentLatencyDaily.insert_from(
            a.select(a.organization_id, day, a.agent_name, a.success, a.latency_bucket, calls)
            .where(new)
            .group_by(a.organization_id, day, a.agent_name, a.success, a.latency_bucket),
            fields=[
                AgentLatencyDaily.organization_id,
                AgentLatencyDaily.day,
                AgentLatencyDaily.agent_name,
                AgentLatencyDaily.success,
                AgentLatencyDaily.bucket,
                AgentLatencyDaily.calls,
            ],
        ).on_conflict(
            conflict_target=[
                AgentLatencyDaily.organization_id,
                AgentLatencyDaily.day,
                AgentLatencyDaily.agent_name,
                AgentLatencyDaily.success,
                AgentLatencyDaily.bucket,
            ],
            update=_add(AgentLatencyDaily, "calls"),
        ),
        AgentUserLatencyDaily.insert_from(
            a.select(a.user_id, day, a.agent_name, a.success, a.latency_bucket, calls)
            .where(user)
            .group_by(a.user_id, day, a.agent_name, a.success, a.latency_bucket),
            fields=[
                AgentUserLatencyDaily.user_id,
                AgentUserLatencyDaily.day,
                AgentUserLatencyDaily.agent_name,
                AgentUserLatencyDaily.success,
                AgentUserLatencyDaily.bucket,
                AgentUserLatencyDaily.calls,
            ],
        ).on_conflict(
            conflict_target=[
                AgentUserLatencyDaily.user_id,
                AgentUserLatencyDaily.day,
                AgentUserLatencyDaily.agent_name,
                AgentUserLatencyDaily.success,
                AgentUserLatencyDaily.bucket,
            ],
            update=_add(AgentUserLatencyDaily, "calls"),
        ),
    ]


def _productivity_rollups() -> list[Any]:
    p = ProductivityMetric
    user = fn.COALESCE(p.user_id, "")
    team = fn.COALESCE(p.team_id, "")
    hour = p.hour + 0
    h = ProductivityHourly
    lower = Case(None, [(EXCLUDED.value_min < h.value_min, EXCLUDED.value_min)], h.value_min)
    higher = Case(None, [(EXCLUDED.value_max > h.value_max, EXCLUDED.value_max)], h.value_max)
    return [
        h.insert_from(
            p.select(
                p.organization_id,
                hour,
                p.metric_type,
                user,
                team,
                fn.COUNT(p.id),
                fn.SUM(p.value),
                fn.MIN(p.value),
                fn.MAX(p.value),
            )
            .where(p.id > SINCE)
            .group_by(p.organization_id, hour, p.metric_type, user, team),
            fields=[
                h.organization_id,
                h.hour,
                h.metric_type,
                h.user_id,
                h.team_id,
                h.samples,
                h.value_sum,
                h.value_min,
                h.value_max,
            ],
        ).on_conflict(
            conflict_target=[h.organization_id, h.hour, h.metric_type, h.user_id, h.team_id],
            update={**_add(h, "samples", "value_sum"), h.value_min: lower, h.value_max: higher},
        )
    ]


AGENTS = RowKind("agent_executions", AGENT_COLUMNS, _agent_rollups)
PRODUCTIVITY = RowKind("productivity_metrics", PRODUCTIVITY_COLUMNS, _productivity_rollups)
