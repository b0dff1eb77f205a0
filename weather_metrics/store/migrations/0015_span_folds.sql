-- Version 15: the writer no longer adds every commit to tool_latency_spans; housekeeping adds each
-- day once it has ended (store/folds.py), and span_folds records the last day the spans hold.
-- Until now the writer kept the spans whole, so they hold every day tool_latency_daily holds.
CREATE TABLE IF NOT EXISTS span_folds (
    spans TEXT NOT NULL PRIMARY KEY,
    through_day INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO span_folds (spans, through_day)
SELECT 'tool_latency_spans', COALESCE(MAX(day), -86400) FROM tool_latency_daily;
