-- Identities the tripwire receiver refused: a certificate whose records
-- claimed another host, or one revoked or expired since its connection
-- opened. Only the receiver writes these (through the exporter; an agent's
-- records cannot carry the receiver's mark). One row per certificate name
-- and reason, updated in place, so a misconfigured host refused on every
-- request cannot grow the table; the receiver hands each identity on at
-- most once a minute with the count since.
CREATE TABLE refused_hosts (
    cert_name      text        NOT NULL,          -- the certificate's CN
    reason         text        NOT NULL,          -- host_mismatch, revoked, expired, ...
    claimed_name   text,                          -- the host.name claimed, for a mismatch
    detail         text        NOT NULL DEFAULT '',
    cert_serial    text,
    cert_not_after timestamptz,
    ip_address     inet,
    first_seen     timestamptz NOT NULL DEFAULT now(),
    last_seen      timestamptz NOT NULL DEFAULT now(),
    refusals       bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (cert_name, reason)
);
GRANT SELECT ON refused_hosts TO tripwire_reader;

-- A retired host is re-activated by a record under a new certificate,
-- told by its serial (a renewed certificate may keep the not-after day).
-- Hosts retired before this migration have no retired serial and keep the
-- not-after rule.
ALTER TABLE hosts ADD COLUMN cert_serial text;
ALTER TABLE hosts ADD COLUMN retired_cert_serial text;

CREATE OR REPLACE FUNCTION tripwire_retire_host(name text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    UPDATE public.hosts
       SET status = 'RETIRED', retired_at = now(), retired_cert_not_after = cert_not_after,
           retired_cert_serial = cert_serial
     WHERE host_name = name AND status <> 'RETIRED';
    IF FOUND THEN
        RETURN true;
    END IF;
    RETURN EXISTS (SELECT 1 FROM public.hosts WHERE host_name = name);
END
$$;

-- Audit entries follow the alerts' retention. What is purged was verified
-- (it lies at or below the chain head), and its last entry stays behind as
-- the anchor: later verification starts from (seq, hash) instead of the
-- genesis hash, and still catches any change after it.
CREATE TABLE audit_anchors (
    host_id     uuid        PRIMARY KEY REFERENCES hosts (host_id),
    seq         bigint      NOT NULL,
    hash        char(64)    NOT NULL,
    event_time  timestamptz NOT NULL,             -- the anchor entry's time
    anchored_at timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT ON audit_anchors TO tripwire_reader;
