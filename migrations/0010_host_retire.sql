-- Hosts that retire: an Admin marks a decommissioned host RETIRED (its data
-- stays); a retired host raises no offline alert, and its next record under
-- a new certificate (another not-after) re-activates it. The plugin reads
-- with tripwire_reader, which may not write: it retires through this
-- function, which runs as the schema's owner and can do nothing else.
ALTER TABLE hosts DROP CONSTRAINT hosts_status_check;
ALTER TABLE hosts ADD CONSTRAINT hosts_status_check
    CHECK (status IN ('ONLINE', 'OFFLINE', 'DEGRADED', 'RETIRED'));
ALTER TABLE hosts ADD COLUMN retired_at timestamptz;
ALTER TABLE hosts ADD COLUMN retired_cert_not_after timestamptz;

CREATE FUNCTION tripwire_retire_host(name text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    UPDATE public.hosts
       SET status = 'RETIRED', retired_at = now(), retired_cert_not_after = cert_not_after
     WHERE host_name = name AND status <> 'RETIRED';
    IF FOUND THEN
        RETURN true;
    END IF;
    RETURN EXISTS (SELECT 1 FROM public.hosts WHERE host_name = name);
END
$$;
REVOKE ALL ON FUNCTION tripwire_retire_host(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tripwire_retire_host(text) TO tripwire_reader;
