"""The agent executions row kind: the table, its rollups, the row of one execution and the statements folding it in."""

from __future__ import annotations

from typing import Any

from peewee import (
    AutoField,
    CompositeKey,
    FloatField,
    IntegerField,
    TextField,
    fn,
)

from weather_metrics.core.histogram import latency_bucket
from weather_metrics.core.times import DAY, HOUR
from weather_metrics.core.vocabulary import dump_json
from weather_metrics.store.db import BaseModel, FlagField
from weather_metrics.store.rowkind import RawRollup, RowKind, item_seconds, new_rows, summed
from weather_metrics.store.team_rollups import rollups as team_rollups


class AgentExecution(BaseModel):
    id = AutoField()
    organization_id = TextField()
    batch_id = TextField()
    received_at = IntegerField()
    occurred_at = FloatField()
    hour = IntegerField()
    session_id = TextField(null=True)
    user_id = TextField(null=True)
    user_identifier = TextField(null=True)
    agent_name = TextField()
    command = TextField()
    duration_ms = FloatField()
    latency_bucket = IntegerField()
    success = FlagField()
    error_details = TextField(null=True)
    metadata = TextField(null=True)

    class Meta:
        table_name = "agent_executions"


class AgentHourly(BaseModel):
    organization_id = TextField()
    hour = IntegerField()
    agent_name = TextField()
    success = FlagField()
    calls = IntegerField()
    duration_sum = FloatField()

    class Meta:
        primary_key = CompositeKey("organization_id", "hour", "agent_name", "success")
        without_rowid = True


class AgentTotalHourly(BaseModel):
    organization_id = TextField()
    hour = IntegerField()
    success = FlagField()
    calls = IntegerField()
    duration_sum = FloatField()

    class Meta:
        primary_key = CompositeKey("organization_id", "hour", "success")
        without_rowid = True


class AgentUserHourly(BaseModel):
    user_id = TextField()
    hour = IntegerField()
    agent_name = TextField()
    success = FlagField()
    calls = IntegerField()
    duration_sum = FloatField()

    class Meta:
        primary_key = CompositeKey("user_id", "hour", "agent_name", "success")
        without_rowid = True


class AgentLatencyDaily(BaseModel):
    organization_id = TextField()
    day = IntegerField()
    agent_name = TextField()
    success = FlagField()
    bucket = IntegerField()
    calls = IntegerField()

    class Meta:
        primary_key = CompositeKey("organization_id", "day", "agent_name", "success", "bucket")
        without_rowid = True


class AgentUserLatencyDaily(BaseModel):
    user_id = TextField()
    day = IntegerField()
    agent_name = TextField()
    success = FlagField()
    bucket = IntegerField()
    calls = IntegerField()

    class Meta:
        primary_key = CompositeKey("user_id", "day", "agent_name", "success", "bucket")
        without_rowid = True


class AgentDaily(BaseModel):
    organization_id = TextField()
    day = IntegerField()
    agent_name = TextField()
    success = FlagField()
    calls = IntegerField()
    duration_sum = FloatField()

    class Meta:
        primary_key = CompositeKey("organization_id", "day", "agent_name", "success")
        without_rowid = True


class AgentUserDaily(BaseModel):
    user_id = TextField()
    day = IntegerField()
    agent_name = TextField()
    success = FlagField()
    calls = IntegerField()
    duration_sum = FloatField()

    class Meta:
        primary_key = CompositeKey("user_id", "day", "agent_name", "success")
        without_rowid = True


class AgentLatencySpans(BaseModel):
    organization_id = TextField()
    span = IntegerField()
    start = IntegerField()
    agent_name = TextField()
    success = FlagField()
    bucket = IntegerField()
    calls = IntegerField()

    class Meta:
        primary_key = CompositeKey("organization_id", "span", "start", "agent_name", "success", "bucket")
        without_rowid = True


class AgentUserLatencySpans(BaseModel):
    user_id = TextField()
    span = IntegerField()
    start = IntegerField()
    agent_name = TextField()
    success = FlagField()
    bucket = IntegerField()
    calls = IntegerField()

    class Meta:
        primary_key = CompositeKey("user_id", "span", "start", "agent_name", "success", "bucket")
        without_rowid = True


SPANS = (4, 16, 64)  # days of the histogram spans (schema.sql agent_latency_spans)


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
    occurred = item_seconds(item)
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


def _sums(model: Any, owner: str, period: Any, where: Any) -> Any:
    """Calls and duration per owner (organization or user), period, agent and outcome."""
    a = AgentExecution
    owned = getattr(a, owner)
    columns = [getattr(model, owner), model.day]
    return model.insert_from(
        a.select(owned, period, a.agent_name, a.success, fn.COUNT(a.id), fn.SUM(a.duration_ms))
        .where(where)
        .group_by(owned, period, a.agent_name, a.success),
        fields=[*columns, model.agent_name, model.success, model.calls, model.duration_sum],
    ).on_conflict(
        conflict_target=[*columns, model.agent_name, model.success],
        update=summed(model, "calls", "duration_sum"),
    )


def _total_hourly(hour: Any, new: Any) -> Any:
    """Calls and duration of every agent together per organization, hour and outcome."""
    a = AgentExecution
    t = AgentTotalHourly
    key = [t.organization_id, t.hour, t.success]
    return t.insert_from(
        a.select(a.organization_id, hour, a.success, fn.COUNT(a.id), fn.SUM(a.duration_ms))
        .where(new)
        .group_by(a.organization_id, hour, a.success),
        fields=[*key, t.calls, t.duration_sum],
    ).on_conflict(conflict_target=key, update=summed(t, "calls", "duration_sum"))


def _span_histogram(model: Any, owner: str) -> RawRollup:
    """Each new execution into the histogram of every span holding its day."""
    spans = " UNION ALL ".join(f"SELECT {n * DAY} AS length" for n in SPANS)
    table = model._meta.table_name  # noqa: SLF001 - peewee's way to name a model's table
    return RawRollup(
        model,
        f"INSERT INTO {table} ({owner}, span, start, agent_name, success, bucket, calls)"
        f" SELECT {owner}, s.length / {DAY}, hour / s.length * s.length, agent_name, success, latency_bucket,"
        f" COUNT(id) FROM agent_executions, ({spans}) AS s WHERE id > ? AND id <= ? AND {owner} IS NOT NULL"
        f" GROUP BY 1, 2, 3, 4, 5, 6 ON CONFLICT ({owner}, span, start, agent_name, success, bucket)"
        f" DO UPDATE SET calls = {table}.calls + excluded.calls",
    )


def _agent_rollups() -> list[Any]:
    a = AgentExecution
    new = new_rows(a.id)
    hour = a.hour + 0  # `+ 0`: stay on the rowid range (see store/events.py _rollup_queries)
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
            update=summed(AgentHourly, "calls", "duration_sum"),
        ),
        _total_hourly(hour, new),
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
            update=summed(AgentUserHourly, "calls", "duration_sum"),
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
            update=summed(AgentLatencyDaily, "calls"),
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
            update=summed(AgentUserLatencyDaily, "calls"),
        ),
        _sums(AgentDaily, "organization_id", day, new),
        _sums(AgentUserDaily, "user_id", day, user),
        _span_histogram(AgentLatencySpans, "organization_id"),
        _span_histogram(AgentUserLatencySpans, "user_id"),
        *team_rollups(SPANS),
    ]


AGENTS = RowKind("agent_executions", AGENT_COLUMNS, _agent_rollups)
