-- Version 3: organization metrics (agent executions, productivity) with their rollups,
-- dashboards, report exports and webhooks; organizations get a time zone.

ALTER TABLE organizations ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'UTC';

-- Organization metrics (schema version 3). Raw rows are kept for `retention_days`;
-- queries read the rollups below, which every commit updates in the same transaction.
-- `user_id` is the matched user of the organization, or NULL (`user_identifier` keeps
-- what the MCP server sent).
CREATE TABLE IF NOT EXISTS agent_executions (
    id INTEGER PRIMARY KEY,
    organization_id TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    occurred_at REAL NOT NULL,
    hour INTEGER NOT NULL,
    session_id TEXT,
    user_id TEXT,
    user_identifier TEXT,
    agent_name TEXT NOT NULL,
    command TEXT NOT NULL,
    duration_ms REAL NOT NULL,
    latency_bucket INTEGER NOT NULL,
    success INTEGER NOT NULL,
    error_details TEXT,
    metadata TEXT
);

CREATE INDEX IF NOT EXISTS agent_executions_hour ON agent_executions (hour);

-- Whole-organization figures per agent and hour; per-user ones for narrower scopes.
CREATE TABLE IF NOT EXISTS agent_hourly (
    organization_id TEXT NOT NULL,
    hour INTEGER NOT NULL,
    agent_name TEXT NOT NULL,
    success INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    duration_sum REAL NOT NULL,
    PRIMARY KEY (organization_id, hour, agent_name, success)
) WITHOUT ROWID;

-- Per-user tables have no organization column: a user id belongs to one organization,
-- and shorter keys make every commit's upserts cheaper.
CREATE TABLE IF NOT EXISTS agent_user_hourly (
    user_id TEXT NOT NULL,
    hour INTEGER NOT NULL,
    agent_name TEXT NOT NULL,
    success INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    duration_sum REAL NOT NULL,
    PRIMARY KEY (user_id, hour, agent_name, success)
) WITHOUT ROWID;

-- Log-scale duration histograms per UTC day (see weather_metrics/histogram.py).
CREATE TABLE IF NOT EXISTS agent_latency_daily (
    organization_id TEXT NOT NULL,
    day INTEGER NOT NULL,
    agent_name TEXT NOT NULL,
    success INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    PRIMARY KEY (organization_id, day, agent_name, success, bucket)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS agent_user_latency_daily (
    user_id TEXT NOT NULL,
    day INTEGER NOT NULL,
    agent_name TEXT NOT NULL,
    success INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    PRIMARY KEY (user_id, day, agent_name, success, bucket)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS productivity_metrics (
    id INTEGER PRIMARY KEY,
    organization_id TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    occurred_at REAL NOT NULL,
    hour INTEGER NOT NULL,
    metric_type TEXT NOT NULL,
    value REAL NOT NULL,
    user_id TEXT,
    team_id TEXT,
    metadata TEXT
);

CREATE INDEX IF NOT EXISTS productivity_metrics_hour ON productivity_metrics (hour);

-- Per metric type, hour, user and team; '' stands for "none given".
CREATE TABLE IF NOT EXISTS productivity_hourly (
    organization_id TEXT NOT NULL,
    hour INTEGER NOT NULL,
    metric_type TEXT NOT NULL,
    user_id TEXT NOT NULL,
    team_id TEXT NOT NULL,
    samples INTEGER NOT NULL,
    value_sum REAL NOT NULL,
    value_min REAL NOT NULL,
    value_max REAL NOT NULL,
    PRIMARY KEY (organization_id, hour, metric_type, user_id, team_id)
) WITHOUT ROWID;

-- Dashboards: scope user (owner only), team (its members) or organization (everyone).
CREATE TABLE IF NOT EXISTS dashboards (
    id TEXT NOT NULL PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    owner_id TEXT NOT NULL REFERENCES users (id),
    scope TEXT NOT NULL,
    team_id TEXT REFERENCES teams (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    layout TEXT NOT NULL,
    filters TEXT NOT NULL,
    is_default INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE INDEX IF NOT EXISTS dashboards_organization ON dashboards (organization_id, scope);

CREATE INDEX IF NOT EXISTS dashboards_team ON dashboards (team_id);

-- Report exports: background jobs and the files they write (kept until expires_at).
CREATE TABLE IF NOT EXISTS report_jobs (
    id TEXT NOT NULL PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    report_type TEXT NOT NULL,
    format TEXT NOT NULL,
    filters TEXT NOT NULL,
    status TEXT NOT NULL,
    progress INTEGER NOT NULL,
    rows_written INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    error TEXT,
    file_path TEXT,
    file_name TEXT,
    content_type TEXT,
    size_bytes INTEGER,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    expires_at INTEGER NOT NULL
);

CREATE INDEX IF NOT EXISTS report_jobs_status ON report_jobs (status, created_at);

CREATE INDEX IF NOT EXISTS report_jobs_organization ON report_jobs (organization_id, user_id);

-- Webhooks of an organization (POST /mcp/hooks/register). The secret is kept encrypted
-- (Fernet, key derived from jwt_secret): deliveries are signed with it.
CREATE TABLE IF NOT EXISTS webhooks (
    id TEXT NOT NULL PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    secret_encrypted TEXT NOT NULL,
    secret_hint TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    consecutive_failures INTEGER NOT NULL,
    disabled_reason TEXT,
    created_at INTEGER NOT NULL
);

CREATE INDEX IF NOT EXISTS webhooks_organization ON webhooks (organization_id);

-- One event to send to one webhook, with the log of its attempts (a JSON array).
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id TEXT NOT NULL PRIMARY KEY,
    webhook_id TEXT NOT NULL REFERENCES webhooks (id),
    event TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    attempt_log TEXT NOT NULL,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    finished_at INTEGER
);

CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);

CREATE INDEX IF NOT EXISTS webhook_deliveries_webhook ON webhook_deliveries (webhook_id, created_at);
