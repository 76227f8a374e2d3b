-- Each event's payload is stored once (issue 17).
--
-- A chained event's canonical bytes are the evidence its hash covers, so they
-- stay in audit_entries.payload (text, exactly as received). Its alert row
-- keeps the columns listing, filters and search use, and leaves event_detail
-- NULL: the detail is the audit entry at the alert's (host_id, seq) whose
-- alert_id is the alert's. Events outside a host's chain (central events,
-- chain-break alerts, entries stored as forks in chain_forks) have no such
-- entry and keep event_detail.
--
-- Existing rows keep both copies and read as before; nothing is rewritten.
-- Dropping NOT NULL only changes the catalog (a brief lock, no scan).
-- Retention removes an audit entry when its alert partition goes (the same
-- month), or keeps it past retention as evidence: an alert never outlives
-- the entry holding its detail.
ALTER TABLE alerts ALTER COLUMN event_detail DROP NOT NULL;

-- alert_payload is an alert's event as stored JSON text: event_detail, or
-- else the exact canonical bytes of its audit entry. Readers that hand the
-- detail on (the plugin's /api/v1) use this.
CREATE FUNCTION alert_payload(host_id uuid, seq bigint, alert_id uuid, event_detail jsonb)
RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce($4::text,
                    (SELECT e.payload FROM audit_entries e WHERE e.host_id = $1 AND e.seq = $2 AND e.alert_id = $3))
$$;

-- alert_detail is the same as jsonb, for queries on its keys
-- (alert_detail(host_id, seq, alert_id, event_detail) ->> 'file.path').
-- jsonb refuses the escape \u0000, which canonical bytes may hold (a field
-- the kernel hands over unchecked): it becomes \ufffd, as in event_detail.
CREATE FUNCTION alert_detail(host_id uuid, seq bigint, alert_id uuid, event_detail jsonb)
RETURNS jsonb LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce($4,
                    (SELECT replace(e.payload, '\u0000', '\ufffd')::jsonb
                     FROM audit_entries e WHERE e.host_id = $1 AND e.seq = $2 AND e.alert_id = $3))
$$;
