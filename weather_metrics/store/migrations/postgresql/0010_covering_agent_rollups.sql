-- Version 10: each organization rollup's primary key also carries the figures summed from it
-- (INCLUDE), so a scope's rows are read from the index alone. The rows of one user or one
-- organization lie scattered over the table in the order they were first written, and reading
-- them from the table cost one page each: 500 ms for a manager's 90 days at 10 million executions,
-- 15 ms from the index. Rebuilding the keys locks each table while it runs (about 10 s for
-- 2.5 million rows on a small machine).

ALTER TABLE agent_hourly DROP CONSTRAINT agent_hourly_pkey,
    ADD PRIMARY KEY (organization_id, hour, agent_name, success) INCLUDE (calls, duration_sum);

ALTER TABLE agent_user_hourly DROP CONSTRAINT agent_user_hourly_pkey,
    ADD PRIMARY KEY (user_id, hour, agent_name, success) INCLUDE (calls, duration_sum);

ALTER TABLE agent_daily DROP CONSTRAINT agent_daily_pkey,
    ADD PRIMARY KEY (organization_id, day, agent_name, success) INCLUDE (calls, duration_sum);

ALTER TABLE agent_user_daily DROP CONSTRAINT agent_user_daily_pkey,
    ADD PRIMARY KEY (user_id, day, agent_name, success) INCLUDE (calls, duration_sum);

ALTER TABLE agent_latency_daily DROP CONSTRAINT agent_latency_daily_pkey,
    ADD PRIMARY KEY (organization_id, day, agent_name, success, bucket) INCLUDE (calls);

ALTER TABLE agent_user_latency_daily DROP CONSTRAINT agent_user_latency_daily_pkey,
    ADD PRIMARY KEY (user_id, day, agent_name, success, bucket) INCLUDE (calls);

ALTER TABLE agent_latency_spans DROP CONSTRAINT agent_latency_spans_pkey,
    ADD PRIMARY KEY (organization_id, span, start, agent_name, success, bucket) INCLUDE (calls);

ALTER TABLE agent_user_latency_spans DROP CONSTRAINT agent_user_latency_spans_pkey,
    ADD PRIMARY KEY (user_id, span, start, agent_name, success, bucket) INCLUDE (calls);
