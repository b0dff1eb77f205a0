-- Version 16: pruning finds events past retention by id (ids follow arrival) and late events
-- through a partial index, instead of through an index of every event's hour, which cost the
-- writer about 40% of each raw INSERT (store/pruning.py).
DROP INDEX IF EXISTS events_timestamp_hour;
CREATE INDEX IF NOT EXISTS events_late ON events (timestamp_hour) WHERE timestamp_hour < received_at - 86400;
