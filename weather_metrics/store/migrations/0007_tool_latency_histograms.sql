-- Version 8: response-time histograms per tool, by day and by block of 7 days, for each tool's
-- percentiles. They are filled from the raw events still kept (`retention_days`): days whose raw
-- events were pruned before the upgrade have no per-tool histogram, and a tool's percentiles
-- over a period reaching back to them come from the later days only.

CREATE TABLE IF NOT EXISTS tool_latency_daily (
    day INTEGER NOT NULL,
    tool TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    PRIMARY KEY (day, tool, bucket)
) WITHOUT ROWID;

INSERT INTO tool_latency_daily (day, tool, bucket, calls)
SELECT timestamp_hour / 86400 * 86400, tool, latency_bucket, COUNT(*)
FROM events
WHERE latency_bucket IS NOT NULL
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3;

-- The same per tool and block of 7 days (`week`: its first day).
CREATE TABLE IF NOT EXISTS tool_latency_weekly (
    week INTEGER NOT NULL,
    tool TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    PRIMARY KEY (week, tool, bucket)
) WITHOUT ROWID;

INSERT INTO tool_latency_weekly (week, tool, bucket, calls)
SELECT day / 604800 * 604800, tool, bucket, SUM(calls)
FROM tool_latency_daily
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3;
