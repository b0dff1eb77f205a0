-- Version 13: each tool's latency histograms summed over spans of 4, 16 and 64 UTC days, filled
-- from the daily ones, in place of the 7-day blocks: a 90-day period sorts about 9 spans' and
-- days' rows for its GROUP BY instead of 13 blocks and up to 12 days. Every day tool_latency_daily
-- still holds is summed into its spans, so the answers do not change.
CREATE TABLE IF NOT EXISTS tool_latency_spans (
    span INTEGER NOT NULL,
    start INTEGER NOT NULL,
    tool TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    PRIMARY KEY (span, start, tool, bucket)
) WITHOUT ROWID;

INSERT INTO tool_latency_spans (span, start, tool, bucket, calls)
SELECT s.length, day / (s.length * 86400) * (s.length * 86400), tool, bucket, SUM(calls)
FROM tool_latency_daily, (SELECT 4 AS length UNION ALL SELECT 16 UNION ALL SELECT 64) AS s
GROUP BY 1, 2, 3, 4
ORDER BY 1, 2, 3, 4;

DROP TABLE tool_latency_weekly;

-- How many sessions were last seen on each UTC day: a period's active installs add up its days.
CREATE TABLE IF NOT EXISTS last_seen_daily (
    day INTEGER NOT NULL,
    sessions INTEGER NOT NULL,
    PRIMARY KEY (day)
) WITHOUT ROWID;

INSERT INTO last_seen_daily (day, sessions)
SELECT last_seen / 86400 * 86400, COUNT(*) FROM sessions GROUP BY 1 ORDER BY 1;
