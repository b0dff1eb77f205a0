-- Version 9: data versions, raised by every transaction that changes ingested data, which
-- answers kept in memory are keyed on; daily agent sums and histograms over spans of days,
-- filled from the rollups already kept.

CREATE TABLE IF NOT EXISTS data_versions (
    name TEXT NOT NULL PRIMARY KEY,
    version INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO data_versions (name, version)
VALUES ('events', 1), ('agent_executions', 1), ('productivity_metrics', 1);

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

INSERT INTO agent_daily (organization_id, day, agent_name, success, calls, duration_sum)
SELECT organization_id, hour / 86400 * 86400, agent_name, success, SUM(calls), SUM(duration_sum)
FROM agent_hourly GROUP BY 1, 2, 3, 4;

INSERT INTO agent_user_daily (user_id, day, agent_name, success, calls, duration_sum)
SELECT user_id, hour / 86400 * 86400, agent_name, success, SUM(calls), SUM(duration_sum)
FROM agent_user_hourly GROUP BY 1, 2, 3, 4;

INSERT INTO agent_latency_spans (organization_id, span, start, agent_name, success, bucket, calls)
SELECT organization_id, s.span, day / (s.span * 86400) * (s.span * 86400), agent_name, success, bucket, SUM(calls)
FROM agent_latency_daily, (SELECT 4 AS span UNION ALL SELECT 16 UNION ALL SELECT 64) AS s
GROUP BY 1, 2, 3, 4, 5, 6;

INSERT INTO agent_user_latency_spans (user_id, span, start, agent_name, success, bucket, calls)
SELECT user_id, s.span, day / (s.span * 86400) * (s.span * 86400), agent_name, success, bucket, SUM(calls)
FROM agent_user_latency_daily, (SELECT 4 AS span UNION ALL SELECT 16 UNION ALL SELECT 64) AS s
GROUP BY 1, 2, 3, 4, 5, 6;
