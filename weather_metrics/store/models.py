"""Peewee models of schema.sql beyond the row kinds: accounts, dashboards, exports, webhooks, alerts, live events.

The row kinds keep their own models (events.py, agents.py, productivity.py); a test checks all agree with schema.sql.
"""

from __future__ import annotations

from peewee import (
    AutoField,
    CompositeKey,
    FloatField,
    ForeignKeyField,
    IntegerField,
    TextField,
)

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
from weather_metrics.store.db import BaseModel, FlagField
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
from weather_metrics.store.folds import SpanFold
from weather_metrics.store.productivity import ProductivityHourly, ProductivityMetric
from weather_metrics.store.team_rollups import TEAM_MODELS
from weather_metrics.store.versions import DataVersion


class IdempotencyKey(BaseModel):
    key = TextField(primary_key=True)
    body_hash = TextField()
    response = TextField()
    created_at = IntegerField()

    class Meta:
        table_name = "idempotency_keys"


class Organization(BaseModel):
    id = TextField(primary_key=True)
    name = TextField()
    created_at = IntegerField()
    time_zone = TextField(default="UTC")

    class Meta:
        table_name = "organizations"


class User(BaseModel):
    id = TextField(primary_key=True)
    organization = ForeignKeyField(Organization, column_name="organization_id")
    organization_id: str  # peewee's accessor for the key
    email = TextField(unique=True)
    name = TextField()
    role = TextField()
    password_hash = TextField(null=True)
    active = FlagField()
    created_at = IntegerField()
    updated_at = IntegerField()

    class Meta:
        table_name = "users"


class Team(BaseModel):
    id = TextField(primary_key=True)
    organization = ForeignKeyField(Organization, column_name="organization_id")
    organization_id: str  # peewee's accessor for the key
    name = TextField()
    description = TextField()
    created_at = IntegerField()

    class Meta:
        table_name = "teams"


class TeamMember(BaseModel):
    team = ForeignKeyField(Team, column_name="team_id", on_delete="CASCADE")
    user = ForeignKeyField(User, column_name="user_id")
    team_id: str
    user_id: str
    role = TextField()
    created_at = IntegerField()

    class Meta:
        table_name = "team_members"
        primary_key = CompositeKey("team", "user")


class AuthSession(BaseModel):
    id = TextField(primary_key=True)
    user = ForeignKeyField(User, column_name="user_id")
    user_id: str
    created_at = IntegerField()
    expires_at = IntegerField()
    revoked_at = IntegerField(null=True)
    revoked_reason = TextField(null=True)

    class Meta:
        table_name = "auth_sessions"


class RefreshToken(BaseModel):
    id = TextField(primary_key=True)
    session = ForeignKeyField(AuthSession, column_name="session_id")
    created_at = IntegerField()
    used_at = IntegerField(null=True)

    class Meta:
        table_name = "refresh_tokens"


class ApiKey(BaseModel):
    id = TextField(primary_key=True)
    organization = ForeignKeyField(Organization, column_name="organization_id")
    organization_id: str  # peewee's accessor for the key
    name = TextField()
    prefix = TextField()
    secret_hash = TextField(unique=True)
    created_by = ForeignKeyField(User, column_name="created_by", null=True)
    created_by_id: str | None
    created_at = IntegerField()
    last_used_at = IntegerField(null=True)
    revoked_at = IntegerField(null=True)
    scope = TextField(default="ingest")  # "ingest" or "read"

    class Meta:
        table_name = "api_keys"


class Dashboard(BaseModel):
    id = TextField(primary_key=True)
    organization = ForeignKeyField(Organization, column_name="organization_id")
    organization_id: str  # peewee's accessor for the key
    owner = ForeignKeyField(User, column_name="owner_id")
    owner_id: str
    scope = TextField()
    team = ForeignKeyField(Team, column_name="team_id", null=True, on_delete="CASCADE")
    team_id: str | None
    name = TextField()
    description = TextField()
    layout = TextField()  # JSON list of widgets
    filters = TextField()  # JSON object
    is_default = FlagField()
    created_at = IntegerField()
    updated_at = IntegerField()

    class Meta:
        table_name = "dashboards"


class ReportJob(BaseModel):
    id = TextField(primary_key=True)
    organization = ForeignKeyField(Organization, column_name="organization_id")
    organization_id: str  # peewee's accessor for the key
    user = ForeignKeyField(User, column_name="user_id")
    user_id: str
    report_type = TextField()  # productivity | agents | teams
    format = TextField()  # csv | xlsx | pdf
    filters = TextField()  # JSON object
    status = TextField()  # queued | running | done | failed
    progress = IntegerField()  # 0-100
    rows_written = IntegerField()
    attempts = IntegerField()
    error = TextField(null=True)
    file_path = TextField(null=True)
    file_name = TextField(null=True)
    content_type = TextField(null=True)
    size_bytes = IntegerField(null=True)
    created_at = IntegerField()
    started_at = IntegerField(null=True)
    finished_at = IntegerField(null=True)
    expires_at = IntegerField()
    heartbeat_at = IntegerField(null=True)  # renewed by the runner building it (a lease)

    class Meta:
        table_name = "report_jobs"


class Webhook(BaseModel):
    id = TextField(primary_key=True)
    organization = ForeignKeyField(Organization, column_name="organization_id")
    organization_id: str
    url = TextField()
    events = TextField()  # JSON array of event names
    secret_encrypted = TextField()  # Fernet token; see webhooks/signing.py SecretBox
    secret_hint = TextField()  # last 4 characters
    enabled = FlagField()
    consecutive_failures = IntegerField()  # given-up deliveries in a row
    disabled_reason = TextField(null=True)
    created_at = IntegerField()

    class Meta:
        table_name = "webhooks"


class WebhookDelivery(BaseModel):
    id = TextField(primary_key=True)
    webhook = ForeignKeyField(Webhook, column_name="webhook_id")
    webhook_id: str
    event = TextField()
    payload = TextField()  # JSON object, without its signature
    status = TextField()  # pending | delivered | failed
    attempts = IntegerField()
    next_attempt_at = IntegerField()
    attempt_log = TextField()  # JSON array of {attempt, at, status_code, error, duration_ms}
    last_error = TextField(null=True)
    created_at = IntegerField()
    finished_at = IntegerField(null=True)

    class Meta:
        table_name = "webhook_deliveries"


ROLLUP_MODELS = (
    ToolHourly,
    ToolDaily,
    LatencyDaily,
    ToolLatencyDaily,
    ToolLatencySpans,
    VersionDaily,
    CountryDaily,
    ServiceDaily,
    ErrorDaily,
)
ORG_ROLLUP_MODELS = (
    AgentHourly,
    AgentTotalHourly,
    AgentUserHourly,
    AgentLatencyDaily,
    AgentUserLatencyDaily,
    AgentDaily,
    AgentUserDaily,
    AgentLatencySpans,
    AgentUserLatencySpans,
    *TEAM_MODELS,
    ProductivityHourly,
)
ACCOUNT_MODELS = (Organization, User, Team, TeamMember, AuthSession, RefreshToken, ApiKey)


class AlertRule(BaseModel):
    id = TextField(primary_key=True)
    organization = ForeignKeyField(Organization, column_name="organization_id")
    organization_id: str
    name = TextField()
    metric = TextField()  # error_rate | p95_latency_ms | call_volume | productivity
    metric_type = TextField(null=True)  # the productivity metric type
    scope_type = TextField()  # organization | team | agent | tool
    scope_value = TextField(null=True)
    comparison = TextField()  # gt | gte | lt | lte
    threshold = FloatField()
    window_minutes = IntegerField()
    severity = TextField()  # low | medium | high | critical
    cooldown_minutes = IntegerField()
    enabled = FlagField()
    state = TextField()  # ok | firing
    last_value = FloatField(null=True)
    last_fired_at = IntegerField(null=True)
    next_evaluation_at = IntegerField()
    created_by = ForeignKeyField(User, column_name="created_by", null=True)
    created_at = IntegerField()
    updated_at = IntegerField()

    class Meta:
        table_name = "alert_rules"


class AlertEvent(BaseModel):
    id = TextField(primary_key=True)
    organization = ForeignKeyField(Organization, column_name="organization_id")
    organization_id: str
    rule_id = TextField()
    rule_name = TextField()
    severity = TextField()
    metric = TextField()
    scope_type = TextField()
    scope_value = TextField(null=True)
    team_id = TextField(null=True)
    state = TextField()  # firing | resolved
    metric_value = FloatField()
    threshold = FloatField()
    affected_users = TextField()  # JSON array of user ids
    fired_at = IntegerField()
    resolved_at = IntegerField(null=True)
    resolved_value = FloatField(null=True)

    class Meta:
        table_name = "alert_events"


class LiveEvent(BaseModel):
    id = AutoField()
    organization_id = TextField(null=True)
    type = TextField()
    team_id = TextField(null=True)
    payload = TextField()
    created_at = IntegerField()

    class Meta:
        table_name = "live_events"


class WsConnection(BaseModel):
    id = TextField(primary_key=True)
    holder = TextField()
    process = TextField()
    opened_at = IntegerField()
    seen_at = IntegerField()

    class Meta:
        table_name = "ws_connections"


class WsTicket(BaseModel):
    ticket_hash = TextField(primary_key=True)
    user = ForeignKeyField(User, column_name="user_id")
    user_id: str
    session_id = TextField()
    expires_at = IntegerField()

    class Meta:
        table_name = "ws_tickets"


class OidcRedemption(BaseModel):
    digest = TextField(primary_key=True)
    expires_at = IntegerField()

    class Meta:
        table_name = "oidc_redemptions"


ALL_MODELS = (
    Event,
    *ROLLUP_MODELS,
    Session,
    LastSeenDaily,
    IdempotencyKey,
    *ACCOUNT_MODELS,
    AgentExecution,
    ProductivityMetric,
    *ORG_ROLLUP_MODELS,
    Dashboard,
    ReportJob,
    Webhook,
    WebhookDelivery,
    AlertRule,
    AlertEvent,
    LiveEvent,
    WsConnection,
    WsTicket,
    DataVersion,
    SpanFold,
    OidcRedemption,
)
