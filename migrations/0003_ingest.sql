-- alerts and audit_entries take every event; their host_id foreign keys cost
-- a trigger and an index probe of hosts per row, 14 % of the exporter's time
-- in its BenchmarkExport. Their only writer, the
-- tripwire exporter, takes host_id from the hosts row it upserted in the same
-- transaction, and hosts are never deleted, so the keys guard nothing the
-- exporter does not already. The low-volume tables keep theirs.
ALTER TABLE alerts DROP CONSTRAINT alerts_host_id_fkey;
ALTER TABLE audit_entries DROP CONSTRAINT audit_entries_host_id_fkey;

-- The audit entry keeps the exact canonical bytes its hash covers: text, not
-- jsonb, which re-encodes them (and refuses \u0000) and costs a parse per row.
-- The event's queryable form is the alert row's event_detail.
ALTER TABLE audit_entries ALTER COLUMN payload TYPE text;
