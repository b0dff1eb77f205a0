-- Version 9: data versions, raised by every transaction that changes ingested data, which
-- answers kept in memory are keyed on.

CREATE TABLE IF NOT EXISTS data_versions (
    name TEXT NOT NULL PRIMARY KEY,
    version INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO data_versions (name, version)
VALUES ('events', 1), ('agent_executions', 1), ('productivity_metrics', 1);
