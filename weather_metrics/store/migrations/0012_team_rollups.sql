-- Version 12: per-team sums and histograms, mirroring the per-user ones: each row is the
-- sum of the per-user rows of the team's current members. The writer folds every execution into
-- each team its user belongs to; adding or removing a member adds or subtracts that user's rows
-- (store/team_rollups.py). A team's figures, or a manager's, read a few rows here, not every
-- member's; the hours at a range's edges still come from agent_user_hourly.
CREATE TABLE IF NOT EXISTS agent_team_daily (
    team_id TEXT NOT NULL,
    day INTEGER NOT NULL,
    agent_name TEXT NOT NULL,
    success INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    duration_sum REAL NOT NULL,
    PRIMARY KEY (team_id, day, agent_name, success)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS agent_team_latency_daily (
    team_id TEXT NOT NULL,
    day INTEGER NOT NULL,
    agent_name TEXT NOT NULL,
    success INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    PRIMARY KEY (team_id, day, agent_name, success, bucket)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS agent_team_latency_spans (
    team_id TEXT NOT NULL,
    span INTEGER NOT NULL,
    start INTEGER NOT NULL,
    agent_name TEXT NOT NULL,
    success INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    PRIMARY KEY (team_id, span, start, agent_name, success, bucket)
) WITHOUT ROWID;

-- Fill them from the per-user rows of every current member.
INSERT INTO agent_team_daily (team_id, day, agent_name, success, calls, duration_sum)
SELECT m.team_id, u.day, u.agent_name, u.success, SUM(u.calls), SUM(u.duration_sum)
FROM team_members AS m JOIN agent_user_daily AS u ON u.user_id = m.user_id
GROUP BY m.team_id, u.day, u.agent_name, u.success;

INSERT INTO agent_team_latency_daily (team_id, day, agent_name, success, bucket, calls)
SELECT m.team_id, u.day, u.agent_name, u.success, u.bucket, SUM(u.calls)
FROM team_members AS m JOIN agent_user_latency_daily AS u ON u.user_id = m.user_id
GROUP BY m.team_id, u.day, u.agent_name, u.success, u.bucket;

INSERT INTO agent_team_latency_spans (team_id, span, start, agent_name, success, bucket, calls)
SELECT m.team_id, u.span, u.start, u.agent_name, u.success, u.bucket, SUM(u.calls)
FROM team_members AS m JOIN agent_user_latency_spans AS u ON u.user_id = m.user_id
GROUP BY m.team_id, u.span, u.start, u.agent_name, u.success, u.bucket;
