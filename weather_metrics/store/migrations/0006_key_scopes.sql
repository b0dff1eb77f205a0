-- Version 6: an API key has a scope. Keys made before it only ingested, so they get `ingest`.

ALTER TABLE api_keys ADD COLUMN scope TEXT NOT NULL DEFAULT 'ingest';
