-- Alert ids are unique per host, not per table: with (alert_id, event_time)
-- alone, one host sending another's alert id and time made the exporter's
-- ON CONFLICT DO NOTHING drop the other host's event as a replay.
-- alert_id stays first so lookups by id keep their index.
ALTER TABLE alerts DROP CONSTRAINT alerts_pkey;
ALTER TABLE alerts ADD PRIMARY KEY (alert_id, host_id, event_time);
