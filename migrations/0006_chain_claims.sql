-- The chain head each host's agent last announced in a heartbeat (its
-- tripwire.seq and tripwire.audit.hash): the end of its local audit log,
-- shipped or not. A later announcement that goes backwards, or forks from
-- it or from a stored entry, means the local log was cut or rewritten.
-- claimed_at is the heartbeat's own time, so an older heartbeat delivered
-- late is not taken for a rollback; claim_broken keeps one episode to one
-- alert.
ALTER TABLE chain_heads
    ADD COLUMN claimed_seq  bigint,
    ADD COLUMN claimed_hash char(64),
    ADD COLUMN claimed_at   timestamptz,
    ADD COLUMN claim_broken boolean NOT NULL DEFAULT false;
