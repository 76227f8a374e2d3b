-- Why an agent is DEGRADED, as its last heartbeat said ("; "-separated):
-- unserved rules, mechanisms lacking reads or the actor, shipping failing,
-- the spool over its limit.
ALTER TABLE hosts ADD COLUMN status_reasons text;
