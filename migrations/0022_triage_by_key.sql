-- Triage by an alert's whole key (issue 17).
--
-- Alerts are partitioned by day, and alert_id is not the partition key: a
-- lookup by id alone probes every day's partition. With p_event_time (the
-- alert's event_time, which every alert the plugin lists carries), it reads
-- that day's partition only. A bulk change of 100 alerts among 5 million
-- of 90 days (the plugin's BenchmarkBulkTriage, which plans every statement
-- for its values): p50 319 ms by id, 30 ms by key. Without p_event_time,
-- tripwire_triage looks up the id as before.
--
-- tripwire_triage as in 0019_live_triage.sql, plus p_event_time. The old
-- signature goes: a call with seven arguments takes the default.
DROP FUNCTION tripwire_triage(uuid, text, text, text, boolean, text, text);
CREATE FUNCTION tripwire_triage(p_alert_id uuid, p_host text, p_actor text,
                                p_state text, p_assign boolean, p_assignee text, p_note text,
                                p_event_time timestamptz DEFAULT NULL)
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
    -- Two statements, not one with "p_event_time IS NULL OR ...": a plan
    -- made without the values (plpgsql's after five calls, when
    -- plan_cache_mode allows) prunes partitions only on a plain
    -- event_time = $n.
    IF p_event_time IS NULL THEN
        SELECT count(*), min(host_id::text)::uuid, min(event_time), min(host_name) INTO found_n, k_host, k_time, k_name
          FROM (SELECT host_id, host_name, event_time FROM public.alerts
                 WHERE alert_id = p_alert_id AND (p_host = '' OR host_name = p_host) LIMIT 2) a;
    ELSE
        SELECT count(*), min(host_id::text)::uuid, min(event_time), min(host_name) INTO found_n, k_host, k_time, k_name
          FROM (SELECT host_id, host_name, event_time FROM public.alerts
                 WHERE alert_id = p_alert_id AND event_time = p_event_time
                   AND (p_host = '' OR host_name = p_host) LIMIT 2) a;
    END IF;
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
REVOKE ALL ON FUNCTION tripwire_triage(uuid, text, text, text, boolean, text, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tripwire_triage(uuid, text, text, text, boolean, text, text, timestamptz) TO tripwire_reader;
