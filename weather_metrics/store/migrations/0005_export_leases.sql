-- Version 5: export jobs are leased; the runner building one renews heartbeat_at.

ALTER TABLE report_jobs ADD COLUMN heartbeat_at INTEGER;
