-- Version 4: alert rules and their history, live WebSocket events, sockets and tickets.

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

-- Early databases of version 3 were made before report_jobs and the webhook tables were
-- added to it: they are created here, as version 3 defines them, where they are missing.
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
