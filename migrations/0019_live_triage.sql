-- Live triage: every triage change NOTIFYs tripwire_triage_changes
-- (contract.TriageNotifyChannel) with the alert's key (alert_id, host_name,
-- event_time as contract.NotifyTimeLayout), so the Grafana plugin's live
-- feed re-reads the alert and shows its new state. The NOTIFY is part of
-- the change's transaction: a rolled-back change sends nothing. A change to
-- the value already there records nothing and notifies nothing.
--
-- tripwire_triage as in 0015_triage.sql, plus the host name and the NOTIFY.
CREATE OR REPLACE FUNCTION tripwire_triage(p_alert_id uuid, p_host text, p_actor text,
                                p_state text, p_assign boolean, p_assignee text, p_note text)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    found_n  integer;
    k_host   uuid;
    k_time   timestamptz;
    k_name   text;
    inserted integer;
    changed  boolean := false;
    cur      public.alert_triage%ROWTYPE;
BEGIN
    SELECT count(*), min(host_id::text)::uuid, min(event_time), min(host_name) INTO found_n, k_host, k_time, k_name
      FROM (SELECT host_id, host_name, event_time FROM public.alerts
             WHERE alert_id = p_alert_id AND (p_host = '' OR host_name = p_host) LIMIT 2) a;
    IF found_n <> 1 THEN
        RETURN found_n;
    END IF;
    -- Insert-then-lock serialises concurrent changes to one alert; the
    -- comparisons below see the state the previous change left.
    INSERT INTO public.alert_triage (alert_id, host_id, event_time, updated_by)
    VALUES (p_alert_id, k_host, k_time, p_actor)
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS inserted = ROW_COUNT;
    SELECT * INTO cur FROM public.alert_triage
     WHERE alert_id = p_alert_id AND host_id = k_host AND event_time = k_time FOR UPDATE;
    IF p_state IS NOT NULL AND p_state IS DISTINCT FROM cur.state THEN
        UPDATE public.alert_triage SET state = p_state
         WHERE alert_id = p_alert_id AND host_id = k_host AND event_time = k_time;
        INSERT INTO public.alert_triage_history (alert_id, host_id, event_time, actor, action, state)
        VALUES (p_alert_id, k_host, k_time, p_actor, 'state', p_state);
        changed := true;
    END IF;
    IF p_assign AND p_assignee IS DISTINCT FROM cur.assignee THEN
        UPDATE public.alert_triage SET assignee = p_assignee
         WHERE alert_id = p_alert_id AND host_id = k_host AND event_time = k_time;
        INSERT INTO public.alert_triage_history (alert_id, host_id, event_time, actor, action, assignee)
        VALUES (p_alert_id, k_host, k_time, p_actor, 'assign', p_assignee);
        changed := true;
    END IF;
    IF p_note IS NOT NULL THEN
        INSERT INTO public.alert_triage_history (alert_id, host_id, event_time, actor, action, note)
        VALUES (p_alert_id, k_host, k_time, p_actor, 'note', p_note);
        changed := true;
    END IF;
    IF changed THEN
        UPDATE public.alert_triage SET updated_at = now(), updated_by = p_actor
         WHERE alert_id = p_alert_id AND host_id = k_host AND event_time = k_time;
        -- Sent on commit only, once per alert and transaction (PostgreSQL
        -- folds equal payloads), so a bulk change names each alert once.
        PERFORM pg_notify('tripwire_triage_changes', json_build_object(
            'alert_id', p_alert_id, 'host_name', k_name,
            'event_time', to_char(k_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))::text);
    ELSIF inserted = 1 THEN
        -- Nothing to record (say, reopening an open alert): no row is OPEN.
        DELETE FROM public.alert_triage
         WHERE alert_id = p_alert_id AND host_id = k_host AND event_time = k_time;
    END IF;
    RETURN 1;
END
$$;
REVOKE ALL ON FUNCTION tripwire_triage(uuid, text, text, text, boolean, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tripwire_triage(uuid, text, text, text, boolean, text, text) TO tripwire_reader;
