-- TripWire central schema. Applied by migrations.Apply inside one transaction,
-- once per version (schema_migrations).

CREATE TABLE hosts (
    host_id        uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    host_name      text        NOT NULL UNIQUE,       -- the agent certificate's CN
    host_ext_id    text,                              -- resource host.id
    ip_address     inet,
    platform       text,                              -- os.type
    arch           text,                              -- host.arch
    agent_version  text,
    watchers       text,                              -- "file=fanotify,process=ebpf,..."
    unserved_rules text,
    cert_not_after timestamptz,
    first_seen     timestamptz NOT NULL DEFAULT now(),
    last_seen      timestamptz NOT NULL DEFAULT now(),
    last_alert_at  timestamptz,
    status         text        NOT NULL DEFAULT 'ONLINE'
                   CHECK (status IN ('ONLINE', 'OFFLINE', 'DEGRADED'))
);

-- One row per event (trips, agent events, central audit events). Idempotent on
-- alert_id: a replayed event carries the same alert_id and event_time.
CREATE TABLE alerts (
    alert_id      uuid        NOT NULL,
    event_time    timestamptz NOT NULL,               -- agent clock
    received_at   timestamptz NOT NULL DEFAULT now(), -- collector commit time
    host_id       uuid        NOT NULL REFERENCES hosts (host_id),
    host_name     text        NOT NULL,
    event_name    text        NOT NULL,               -- tripwire.file.access, ...
    tripwire_type text        NOT NULL,               -- file, process, network, agent, audit
    rule_name     text        NOT NULL DEFAULT '',
    severity      text        NOT NULL CHECK (severity IN ('INFO', 'WARN', 'CRITICAL')),
    seq           bigint,                             -- per-host audit seq; NULL for central events
    summary       text        NOT NULL DEFAULT '',
    event_detail  jsonb       NOT NULL,               -- the canonical event
    PRIMARY KEY (alert_id, event_time)
) PARTITION BY RANGE (event_time);

-- Catches events whose time falls outside every monthly partition (a badly
-- skewed agent clock) so they are stored, not refused.
CREATE TABLE alerts_default PARTITION OF alerts DEFAULT;

CREATE INDEX alerts_time_idx     ON alerts (event_time DESC);
CREATE INDEX alerts_host_idx     ON alerts (host_id, event_time DESC);
CREATE INDEX alerts_type_idx     ON alerts (tripwire_type, event_time DESC);
CREATE INDEX alerts_severity_idx ON alerts (severity, event_time DESC);
CREATE INDEX alerts_rule_idx     ON alerts (rule_name, event_time DESC);

-- Each host's audit chain as received: one row per seq.
CREATE TABLE audit_entries (
    host_id     uuid        NOT NULL REFERENCES hosts (host_id),
    seq         bigint      NOT NULL,
    alert_id    uuid        NOT NULL,
    event_time  timestamptz NOT NULL,
    prev_hash   char(64)    NOT NULL,
    hash        char(64)    NOT NULL,
    payload     jsonb       NOT NULL,                 -- canonical event
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (host_id, seq)
);
CREATE INDEX audit_entries_time_idx ON audit_entries (host_id, event_time DESC);

-- The verified head of each host's chain. Locked FOR UPDATE while a batch of
-- that host is checked, which serialises chain checks across collector replicas.
CREATE TABLE chain_heads (
    host_id     uuid        PRIMARY KEY REFERENCES hosts (host_id),
    seq         bigint      NOT NULL,
    hash        char(64)    NOT NULL,
    verified_at timestamptz NOT NULL DEFAULT now()
);

-- Breaks found in a host's chain: gap, fork, mismatch, or an accounted_gap
-- (events the agent reported as shed).
CREATE TABLE chain_breaks (
    break_id      bigserial   PRIMARY KEY,
    host_id       uuid        NOT NULL REFERENCES hosts (host_id),
    detected_at   timestamptz NOT NULL DEFAULT now(),
    kind          text        NOT NULL,
    expected_seq  bigint,
    got_seq       bigint,
    expected_hash text,
    got_hash      text,
    alert_id      uuid                                -- the CRITICAL chain_break alert
);
CREATE INDEX chain_breaks_host_idx ON chain_breaks (host_id, detected_at DESC);
