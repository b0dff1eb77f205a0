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
