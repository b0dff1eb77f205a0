-- Version 8: a response-time histogram per tool and day (tool_latency_daily), for each tool's
-- percentiles. It is filled from the raw events still kept (`retention_days`): days whose raw
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
