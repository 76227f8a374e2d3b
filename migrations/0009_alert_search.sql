-- Free-text search (the plugin's q) without a scan: a trigram index on the
-- narrow text an analyst searches, the alert's summary (event, file path,
-- executable, pid, addresses) and its rule. Measured against ingest: the
-- same index on the whole event (event_detail::text) cost three times as
-- much per insert, a tsvector of every field's words about as much as this
-- one, and this one keeps substring matching (ILIKE '%shad%').
-- pg_trgm ships with PostgreSQL (contrib) and is a trusted extension: the
-- database owner may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE INDEX alerts_search_idx ON alerts USING gin ((summary || ' ' || rule_name) gin_trgm_ops) WITH (fastupdate = on);
