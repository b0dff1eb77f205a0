-- Version 10: on PostgreSQL, each organization rollup's primary key also carries the figures
-- it is summed for (see migrations/postgresql/0010_covering_agent_rollups.sql). SQLite's
-- WITHOUT ROWID tables already store those columns in key order, so there is nothing to do here.
SELECT 1;
