"""Peewee models mirroring schema.sql (a test checks they agree)."""

from __future__ import annotations

from peewee import (
    AutoField,
    BooleanField,
    CompositeKey,
    FloatField,
    IntegerField,
    Model,
    TextField,
)

from weather_metrics.db import database


class BaseModel(Model):
    class Meta:
        database = database
        legacy_table_names = False


class Event(BaseModel):
    id = AutoField()
    received_at = IntegerField()
    timestamp_hour = IntegerField()
    version = TextField()
    tool = TextField()
    is_error = BooleanField()
    analytics_level = TextField()
    response_time_ms = FloatField(null=True)
    latency_bucket = IntegerField(null=True)
    service = TextField(null=True)
    cache_hit = BooleanField(null=True)
    retry_count = IntegerField(null=True)
    country = TextField(null=True)
    error_type = TextField(null=True)
    session_id = TextField(null=True)
    sequence_number = IntegerField(null=True)
    parameters = TextField(null=True)

    class Meta:
        table_name = "events"


class ToolHourly(BaseModel):
    hour = IntegerField()
    tool = TextField()
    calls = IntegerField()
    errors = IntegerField()
    timed_calls = IntegerField()
    response_time_sum = FloatField()
    cache_hits = IntegerField()
    cache_misses = IntegerField()

    class Meta:
        primary_key = CompositeKey("hour", "tool")


class LatencyDaily(BaseModel):
    day = IntegerField()
    bucket = IntegerField()
    calls = IntegerField()

    class Meta:
        primary_key = CompositeKey("day", "bucket")


class VersionDaily(BaseModel):
    day = IntegerField()
    tool = TextField()
    version = TextField()
    calls = IntegerField()

    class Meta:
        primary_key = CompositeKey("day", "tool", "version")


class CountryDaily(BaseModel):
    day = IntegerField()
    tool = TextField()
    country = TextField()
    calls = IntegerField()

    class Meta:
        primary_key = CompositeKey("day", "tool", "country")


class ServiceDaily(BaseModel):
    day = IntegerField()
    service = TextField()
    calls = IntegerField()

    class Meta:
        primary_key = CompositeKey("day", "service")


class ErrorDaily(BaseModel):
    day = IntegerField()
    error_type = TextField()
    errors = IntegerField()
    last_seen = IntegerField()

    class Meta:
        primary_key = CompositeKey("day", "error_type")


class Session(BaseModel):
    session_id = TextField(primary_key=True)
    last_seen = IntegerField()

    class Meta:
        table_name = "sessions"


class IdempotencyKey(BaseModel):
    key = TextField(primary_key=True)
    body_hash = TextField()
    response = TextField()
    created_at = IntegerField()

    class Meta:
        table_name = "idempotency_keys"


ROLLUP_MODELS = (ToolHourly, LatencyDaily, VersionDaily, CountryDaily, ServiceDaily, ErrorDaily)
ALL_MODELS = (Event, *ROLLUP_MODELS, Session, IdempotencyKey)
