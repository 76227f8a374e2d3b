-- What the exporter's audit-chain check needs beyond the base schema.

-- Seq ranges an agent reported as shed from its spool (tripwire.agent.loss,
-- reason spool_shed). A chain gap inside them is an accounted_gap, not
-- tampering. Recorded when the loss event arrives, whatever its own place in
-- the chain, so the gap may be seen before or after it.
CREATE TABLE chain_losses (
    host_id     uuid        NOT NULL REFERENCES hosts (host_id),
    first_seq   bigint      NOT NULL,
    last_seq    bigint      NOT NULL,
    alert_id    uuid        NOT NULL,                 -- the loss event
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (host_id, first_seq, last_seq),
    CHECK (first_seq <= last_seq)
);

-- Entries that contradict the verified chain (a fork): kept apart from
-- audit_entries, which holds one entry per seq. A later entry whose prev_hash
-- is a fork's hash continues that fork, which was already reported.
CREATE TABLE chain_forks (
    host_id     uuid        NOT NULL REFERENCES hosts (host_id),
    seq         bigint      NOT NULL,
    hash        char(64)    NOT NULL,
    prev_hash   char(64)    NOT NULL,
    alert_id    uuid        NOT NULL,
    payload     jsonb       NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (host_id, seq, hash)
);
CREATE INDEX chain_forks_hash_idx ON chain_forks (host_id, hash);
