"""The productivity metrics row kind: the table, its hourly rollup, the row of one metric and its fold."""

from __future__ import annotations

from typing import Any

from peewee import (
    EXCLUDED,
    AutoField,
    Case,
    CompositeKey,
    FloatField,
    IntegerField,
    TextField,
    fn,
)

from weather_metrics.core.times import HOUR
from weather_metrics.core.vocabulary import dump_json
from weather_metrics.store.db import BaseModel
from weather_metrics.store.rowkind import RowKind, item_seconds, new_rows, summed


class ProductivityMetric(BaseModel):
    id = AutoField()
    organization_id = TextField()
    batch_id = TextField()
    received_at = IntegerField()
    occurred_at = FloatField()
    hour = IntegerField()
    metric_type = TextField()
    value = FloatField()
    user_id = TextField(null=True)
    team_id = TextField(null=True)
    metadata = TextField(null=True)

    class Meta:
        table_name = "productivity_metrics"


class ProductivityHourly(BaseModel):
    organization_id = TextField()
    hour = IntegerField()
    metric_type = TextField()
    user_id = TextField()  # '' when none was given
    team_id = TextField()  # '' when none was given
    samples = IntegerField()
    value_sum = FloatField()
    value_min = FloatField()
    value_max = FloatField()

    class Meta:
        primary_key = CompositeKey("organization_id", "hour", "metric_type", "user_id", "team_id")
        without_rowid = True


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
    occurred = item_seconds(item)
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
            .where(new_rows(p.id))
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
            update={**summed(h, "samples", "value_sum"), h.value_min: lower, h.value_max: higher},
        )
    ]


PRODUCTIVITY = RowKind("productivity_metrics", PRODUCTIVITY_COLUMNS, _productivity_rollups)
