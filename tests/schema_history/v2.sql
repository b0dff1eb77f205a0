-- weather_metrics schema. The service applies it at start (see weather_metrics/db.py).
-- Times are Unix seconds (UTC); `hour` and `day` columns hold the start of the bucket.
-- Portable SQL; SQLite-only pragmas and statements live in weather_metrics/db.py.

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
CREATE INDEX IF NOT EXISTS events_timestamp_hour ON events (timestamp_hour);

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

-- Log-scale response-time histogram per day (see weather_metrics/histogram.py).
CREATE TABLE IF NOT EXISTS latency_daily (
    day INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    PRIMARY KEY (day, bucket)
);

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
    created_at INTEGER NOT NULL
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

-- Organization API keys for /mcp: only a SHA-256 of the secret is kept.
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT NOT NULL PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    created_by TEXT REFERENCES users (id),
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at INTEGER
);
CREATE INDEX IF NOT EXISTS api_keys_organization ON api_keys (organization_id);
