-- Triage: a SOC analyst acknowledges an alert, assigns it to a Grafana user
-- and annotates it. Written only by the Grafana plugin, through
-- tripwire_triage below, attributed to the Grafana user of the request.
--
-- An alert is (alert_id, host_id, event_time), the key of alerts. These
-- tables carry that key but no foreign key to alerts: a key referencing the
-- partitioned table would stop DropExpired from dropping a month's
-- partition, and the exporter's inserts stay as they are (no trigger, no
-- extra write per event). An alert with no row here is OPEN. DropExpired
-- deletes the triage of the alerts retention removed; the history goes with
-- its state row (ON DELETE CASCADE).
CREATE TABLE alert_triage (
    alert_id   uuid        NOT NULL,
    host_id    uuid        NOT NULL,
    event_time timestamptz NOT NULL,
    state      text        NOT NULL DEFAULT 'OPEN' CHECK (state IN ('OPEN', 'ACKNOWLEDGED')),
    assignee   text        CHECK (length(assignee) BETWEEN 1 AND 256),  -- a Grafana login
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text        NOT NULL CHECK (length(updated_by) BETWEEN 1 AND 256),
    PRIMARY KEY (alert_id, host_id, event_time)
);
-- Retention deletes by event_time; "assigned to me" looks up by assignee.
CREATE INDEX alert_triage_time_idx ON alert_triage (event_time);
CREATE INDEX alert_triage_assignee_idx ON alert_triage (assignee) WHERE assignee IS NOT NULL;

-- Every change, by whom and when: one row per state change, assignment or
-- note.
CREATE TABLE alert_triage_history (
    entry_id   bigserial   PRIMARY KEY,
    alert_id   uuid        NOT NULL,
    host_id    uuid        NOT NULL,
    event_time timestamptz NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text        NOT NULL CHECK (length(actor) BETWEEN 1 AND 256),
    action     text        NOT NULL CHECK (action IN ('state', 'assign', 'note')),
    state      text,       -- action state: the new state
    assignee   text,       -- action assign: the new assignee, NULL when unassigned
    note       text        CHECK (length(note) BETWEEN 1 AND 4000),
    FOREIGN KEY (alert_id, host_id, event_time)
        REFERENCES alert_triage (alert_id, host_id, event_time) ON DELETE CASCADE
);
CREATE INDEX alert_triage_history_alert_idx ON alert_triage_history (alert_id, host_id, event_time, entry_id);

GRANT SELECT ON alert_triage, alert_triage_history TO tripwire_reader;

-- tripwire_triage applies one triage change to the alert with id p_alert_id
-- (on host p_host, or on whichever host has it when p_host is empty) and
-- returns how many alerts matched: 1 when applied; 0 (no such alert) or 2
-- (the id is used by several hosts: name one) when nothing changed. NULL
-- p_state and p_note change nothing; p_assign says whether p_assignee (NULL
-- to unassign) is set. A change to the value already there is not recorded.
-- Like tripwire_retire_host it runs as the schema's owner and can do nothing
-- else, so the plugin's read-only role may call it. The actor is the plugin's
-- word: it passes the Grafana user of the request.
CREATE FUNCTION tripwire_triage(p_alert_id uuid, p_host text, p_actor text,
                                p_state text, p_assign boolean, p_assignee text, p_note text)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    found_n  integer;
    k_host   uuid;
    k_time   timestamptz;
    inserted integer;
    changed  boolean := false;
    cur      public.alert_triage%ROWTYPE;
BEGIN
    SELECT count(*), min(host_id::text)::uuid, min(event_time) INTO found_n, k_host, k_time
      FROM (SELECT host_id, event_time FROM public.alerts
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
