-- weather_metrics schema. The service applies it at start (see weather_metrics/db.py).
-- Times are Unix seconds (UTC); `hour` and `day` columns hold the start of the bucket.
-- SQLite dialect: organization rollups are WITHOUT ROWID, so a range scan reads rows in
-- key order without a second lookup. Pragmas live in weather_metrics/db.py.

CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL
);

-- Raw tool-call events, kept for `retention_days`.
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    received_at INTEGER NOT NULL,
    timestamp_hour INTEGER NOT NULL,
    version TEXT NOT NULL,
    tool TEXT NOT NULL,
    is_error INTEGER NOT NULL,
    analytics_level TEXT NOT NULL,
    response_time_ms REAL,
    latency_bucket INTEGER,
    service TEXT,
    cache_hit INTEGER,
    retry_count INTEGER,
    country TEXT,
    error_type TEXT,
    session_id TEXT,
    sequence_number INTEGER,
    parameters TEXT
);
-- Late events only (schema version 16): those whose hour is more than a day before they arrived.
-- Pruning finds the others by id, as ids follow arrival (store/pruning.py); an index of every
-- event's hour cost the writer about 40% of each INSERT.
CREATE INDEX IF NOT EXISTS events_late ON events (timestamp_hour) WHERE timestamp_hour < received_at - 86400;

-- Per tool and hour: the figures every tool statistic is summed from.
CREATE TABLE IF NOT EXISTS tool_hourly (
    hour INTEGER NOT NULL,
    tool TEXT NOT NULL,
    calls INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    timed_calls INTEGER NOT NULL,
    response_time_sum REAL NOT NULL,
    cache_hits INTEGER NOT NULL,
    cache_misses INTEGER NOT NULL,
    PRIMARY KEY (hour, tool)
);

-- The same per tool and UTC day (schema version 11): a period reads its whole days here and
-- only its other hours above.
CREATE TABLE IF NOT EXISTS tool_daily (
    day INTEGER NOT NULL,
    tool TEXT NOT NULL,
    calls INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    timed_calls INTEGER NOT NULL,
    response_time_sum REAL NOT NULL,
    cache_hits INTEGER NOT NULL,
    cache_misses INTEGER NOT NULL,
    PRIMARY KEY (day, tool)
) WITHOUT ROWID;

-- Log-scale response-time histogram per day (see weather_metrics/histogram.py).
CREATE TABLE IF NOT EXISTS latency_daily (
    day INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    PRIMARY KEY (day, bucket)
);

-- The same histogram per tool: each tool's percentiles (schema version 8).
CREATE TABLE IF NOT EXISTS tool_latency_daily (
    day INTEGER NOT NULL,
    tool TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    PRIMARY KEY (day, tool, bucket)
) WITHOUT ROWID;

-- The same summed over spans of 4, 16 and 64 UTC days (`span`, in days), each starting on a
-- multiple of its length since 1970-01-01 (schema version 13): a period reads a few spans here
-- and the days left over above (query/spans.py `day_spans`).
CREATE TABLE IF NOT EXISTS tool_latency_spans (
    span INTEGER NOT NULL,
    start INTEGER NOT NULL,
    tool TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    PRIMARY KEY (span, start, tool, bucket)
) WITHOUT ROWID;

-- The last day each span table holds (schema version 15): tool_latency_spans hold every day up
-- to through_day and none after. The writer adds a commit's rows to the spans only for those
-- days; housekeeping adds each later day once it has ended and moves through_day on
-- (store/folds.py). Readers take the days after it from tool_latency_daily.
CREATE TABLE IF NOT EXISTS span_folds (
    spans TEXT NOT NULL PRIMARY KEY,
    through_day INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO span_folds (spans, through_day) VALUES ('tool_latency_spans', -86400);

CREATE TABLE IF NOT EXISTS version_daily (
    day INTEGER NOT NULL,
    tool TEXT NOT NULL,
    version TEXT NOT NULL,
    calls INTEGER NOT NULL,
    PRIMARY KEY (day, tool, version)
);

CREATE TABLE IF NOT EXISTS country_daily (
    day INTEGER NOT NULL,
    tool TEXT NOT NULL,
    country TEXT NOT NULL,
    calls INTEGER NOT NULL,
    PRIMARY KEY (day, tool, country)
);

CREATE TABLE IF NOT EXISTS service_daily (
    day INTEGER NOT NULL,
    service TEXT NOT NULL,
    calls INTEGER NOT NULL,
    PRIMARY KEY (day, service)
);

CREATE TABLE IF NOT EXISTS error_daily (
    day INTEGER NOT NULL,
    error_type TEXT NOT NULL,
    errors INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    PRIMARY KEY (day, error_type)
);

-- Hashed session identifiers with the last hour they were seen: `active_installs`.
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT NOT NULL PRIMARY KEY,
    last_seen INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_last_seen ON sessions (last_seen);

-- How many sessions were last seen on each UTC day (schema version 13): a period's active
-- installs add up its days instead of counting its sessions. The writer moves a session from
-- its old day to its new one; a day whose sessions were all seen again later holds 0.
CREATE TABLE IF NOT EXISTS last_seen_daily (
    day INTEGER NOT NULL,
    sessions INTEGER NOT NULL,
    PRIMARY KEY (day)
) WITHOUT ROWID;

-- Idempotency-Key of accepted batches, with the answer they got.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key TEXT NOT NULL PRIMARY KEY,
    body_hash TEXT NOT NULL,
    response TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idempotency_keys_created_at ON idempotency_keys (created_at);

-- Organizations and the people in them (schema version 2).
CREATE TABLE IF NOT EXISTS organizations (
    id TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    -- IANA zone that day, week and month periods follow (schema version 3).
    time_zone TEXT NOT NULL DEFAULT 'UTC'
);

CREATE TABLE IF NOT EXISTS users (
    id TEXT NOT NULL PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    password_hash TEXT,
    active INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS users_organization ON users (organization_id, role);

CREATE TABLE IF NOT EXISTS teams (
    id TEXT NOT NULL PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (organization_id, name)
);

CREATE TABLE IF NOT EXISTS team_members (
    team_id TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id),
    role TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX IF NOT EXISTS team_members_user ON team_members (user_id);

-- A login session: one family of refresh tokens; revoking it ends every token of it.
CREATE TABLE IF NOT EXISTS auth_sessions (
    id TEXT NOT NULL PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER,
    revoked_reason TEXT
);
CREATE INDEX IF NOT EXISTS auth_sessions_user ON auth_sessions (user_id);

-- Every refresh token issued; `used_at` is set once, when it is exchanged.
CREATE TABLE IF NOT EXISTS refresh_tokens (
    id TEXT NOT NULL PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES auth_sessions (id),
    created_at INTEGER NOT NULL,
    used_at INTEGER
);
CREATE INDEX IF NOT EXISTS refresh_tokens_session ON refresh_tokens (session_id);

-- Organization API keys: only a SHA-256 of the secret is kept.
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT NOT NULL PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    created_by TEXT REFERENCES users (id),
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at INTEGER,
    -- `ingest` (/mcp) or `read` (the organization-wide GETs of /api/metrics and /api/analytics); schema version 6.
    scope TEXT NOT NULL DEFAULT 'ingest'
);
CREATE INDEX IF NOT EXISTS api_keys_organization ON api_keys (organization_id);

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

-- Every agent's figures together per organization, hour and outcome (schema version 13): an
-- organization's hourly series reads one row per hour and outcome here, not one per agent above.
CREATE TABLE IF NOT EXISTS agent_total_hourly (
    organization_id TEXT NOT NULL,
    hour INTEGER NOT NULL,
    success INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    duration_sum REAL NOT NULL,
    PRIMARY KEY (organization_id, hour, success)
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

-- The same sums per UTC day: a range of whole days reads these, only its edges the hourly ones.
CREATE TABLE IF NOT EXISTS agent_daily (
    organization_id TEXT NOT NULL,
    day INTEGER NOT NULL,
    agent_name TEXT NOT NULL,
    success INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    duration_sum REAL NOT NULL,
    PRIMARY KEY (organization_id, day, agent_name, success)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS agent_user_daily (
    user_id TEXT NOT NULL,
    day INTEGER NOT NULL,
    agent_name TEXT NOT NULL,
    success INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    duration_sum REAL NOT NULL,
    PRIMARY KEY (user_id, day, agent_name, success)
) WITHOUT ROWID;

-- The daily histograms summed over spans of 4, 16 and 64 UTC days, each starting on a
-- multiple of its length since 1970-01-01: a range of days reads a few spans and up to
-- three days at either end, not every day (query/org_metrics.py `day_spans`).
CREATE TABLE IF NOT EXISTS agent_latency_spans (
    organization_id TEXT NOT NULL,
    span INTEGER NOT NULL,
    start INTEGER NOT NULL,
    agent_name TEXT NOT NULL,
    success INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    PRIMARY KEY (organization_id, span, start, agent_name, success, bucket)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS agent_user_latency_spans (
    user_id TEXT NOT NULL,
    span INTEGER NOT NULL,
    start INTEGER NOT NULL,
    agent_name TEXT NOT NULL,
    success INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    PRIMARY KEY (user_id, span, start, agent_name, success, bucket)
) WITHOUT ROWID;

-- Per-team sums and histograms (schema version 12), mirroring the per-user ones: each row is the
-- sum of the per-user rows of the team's current members. The writer folds every execution into
-- each team its user belongs to; adding or removing a member adds or subtracts that user's rows
-- (store/team_rollups.py). A team's figures, or a manager's, read a few rows here, not every
-- member's; the hours at a range's edges still come from agent_user_hourly.
CREATE TABLE IF NOT EXISTS agent_team_daily (
    team_id TEXT NOT NULL,
    day INTEGER NOT NULL,
    agent_name TEXT NOT NULL,
    success INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    duration_sum REAL NOT NULL,
    PRIMARY KEY (team_id, day, agent_name, success)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS agent_team_latency_daily (
    team_id TEXT NOT NULL,
    day INTEGER NOT NULL,
    agent_name TEXT NOT NULL,
    success INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    PRIMARY KEY (team_id, day, agent_name, success, bucket)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS agent_team_latency_spans (
    team_id TEXT NOT NULL,
    span INTEGER NOT NULL,
    start INTEGER NOT NULL,
    agent_name TEXT NOT NULL,
    success INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    PRIMARY KEY (team_id, span, start, agent_name, success, bucket)
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
    expires_at INTEGER NOT NULL,
    -- Renewed every second by the runner building the job; older than the lease: queued again.
    heartbeat_at INTEGER
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

-- Alert rules of an organization (schema version 4): a metric over a trailing window,
-- compared with a threshold. `scope_type` organization | team | agent | tool;
-- `scope_value` the team id or the agent or command name. `state` ok | firing.
CREATE TABLE IF NOT EXISTS alert_rules (
    id TEXT NOT NULL PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    name TEXT NOT NULL,
    metric TEXT NOT NULL,
    metric_type TEXT,
    scope_type TEXT NOT NULL,
    scope_value TEXT,
    comparison TEXT NOT NULL,
    threshold REAL NOT NULL,
    window_minutes INTEGER NOT NULL,
    severity TEXT NOT NULL,
    cooldown_minutes INTEGER NOT NULL,
    enabled INTEGER NOT NULL,
    state TEXT NOT NULL,
    last_value REAL,
    last_fired_at INTEGER,
    next_evaluation_at INTEGER NOT NULL,
    created_by TEXT REFERENCES users (id),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS alert_rules_organization ON alert_rules (organization_id);
CREATE INDEX IF NOT EXISTS alert_rules_due ON alert_rules (enabled, next_evaluation_at);

-- One firing of a rule: `state` firing until the condition clears, then resolved.
-- The rule's name, severity, scope and threshold are copied: history outlives edits.
CREATE TABLE IF NOT EXISTS alert_events (
    id TEXT NOT NULL PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    rule_id TEXT NOT NULL,
    rule_name TEXT NOT NULL,
    severity TEXT NOT NULL,
    metric TEXT NOT NULL,
    scope_type TEXT NOT NULL,
    scope_value TEXT,
    team_id TEXT,
    state TEXT NOT NULL,
    metric_value REAL NOT NULL,
    threshold REAL NOT NULL,
    affected_users TEXT NOT NULL,
    fired_at INTEGER NOT NULL,
    resolved_at INTEGER,
    resolved_value REAL
);
CREATE INDEX IF NOT EXISTS alert_events_organization ON alert_events (organization_id, fired_at);
CREATE INDEX IF NOT EXISTS alert_events_rule ON alert_events (rule_id, state);

-- What WebSocket clients are told, written in the transaction of what it reports, so
-- every worker process reads it after commit. Kept a few minutes.
-- `organization_id` NULL: the public /v1 room. `team_id`: who may see an alert.
-- AUTOINCREMENT: ids never come back once old events are deleted, so readers keep their place.
CREATE TABLE IF NOT EXISTS live_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    organization_id TEXT,
    type TEXT NOT NULL,
    team_id TEXT,
    payload TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- Open WebSocket connections of every worker process, for the per-user and total limits.
-- `holder` is the user id, or "ip:<address>" for connections without a token.
CREATE TABLE IF NOT EXISTS ws_connections (
    id TEXT NOT NULL PRIMARY KEY,
    holder TEXT NOT NULL,
    process TEXT NOT NULL,
    opened_at INTEGER NOT NULL,
    seen_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ws_connections_holder ON ws_connections (holder);

-- Single-use WebSocket tickets (POST /api/ws/ticket); only a SHA-256 of each is kept.
-- `session_id`: the login session it was asked in; the socket closes when that session ends.
CREATE TABLE IF NOT EXISTS ws_tickets (
    ticket_hash TEXT NOT NULL PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    session_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);

-- A counter per kind of ingested data (store/versions.py), raised by the transaction that
-- changes that data: answers kept in memory are keyed on it, so every process sees a commit.
CREATE TABLE IF NOT EXISTS data_versions (
    name TEXT NOT NULL PRIMARY KEY,
    version INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO data_versions (name, version)
VALUES ('events', 1), ('agent_executions', 1), ('productivity_metrics', 1);

-- States and authorization codes of the pages' OpenID Connect sign-ins already used (schema
-- version 9), so a replayed callback is refused; only a SHA-256 of each is kept, until it expires.
CREATE TABLE IF NOT EXISTS oidc_redemptions (
    digest TEXT NOT NULL PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS oidc_redemptions_expires_at ON oidc_redemptions (expires_at);
