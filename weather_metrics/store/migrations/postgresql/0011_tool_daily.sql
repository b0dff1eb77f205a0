-- Version 11: per-tool sums by UTC day, filled from the hourly ones, so a period reads its whole
-- days from 91 rows per tool instead of 2,184 hours (the hours at a period's edges still come
-- from tool_hourly). Every day tool_hourly still holds gets its row, so the answers do not change.

CREATE TABLE IF NOT EXISTS tool_daily (
    day BIGINT NOT NULL,
    tool TEXT NOT NULL,
    calls BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    timed_calls BIGINT NOT NULL,
    response_time_sum DOUBLE PRECISION NOT NULL,
    cache_hits BIGINT NOT NULL,
    cache_misses BIGINT NOT NULL,
    PRIMARY KEY (day, tool)
);

INSERT INTO tool_daily (day, tool, calls, errors, timed_calls, response_time_sum, cache_hits, cache_misses)
SELECT hour / 86400 * 86400, tool, SUM(calls), SUM(errors), SUM(timed_calls), SUM(response_time_sum),
    SUM(cache_hits), SUM(cache_misses)
FROM tool_hourly
GROUP BY 1, 2;
