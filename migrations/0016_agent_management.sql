-- What each agent reported over OpAMP (the collector's tripwire_opamp
-- extension): the central rule set it was offered, whether it applied or
-- refused it and why, the hash of its effective config and its health. One
-- row per host (the certificate's CN), written only by the collectors; the
-- plugin reads it.
CREATE TABLE agent_management (
    host_name             text        PRIMARY KEY,
    instance_uid          text,
    connected             boolean     NOT NULL DEFAULT false,
    last_message_at       timestamptz,
    -- The rule set the host should run: its hash (SHA-256 of the body, hex)
    -- and its sets as name@version, when offered; offer_error when it could
    -- not be composed (the agent then keeps what it runs).
    offered_hash          text,
    offered_sets          text,
    offered_at            timestamptz,
    offer_error           text,
    -- The agent's last word on a rule set: APPLIED, APPLYING or FAILED, for
    -- the set of rule_hash; applied_at is when it reported it applied.
    rule_status           text        CHECK (rule_status IN ('APPLIED', 'APPLYING', 'FAILED')),
    rule_hash             text,
    applied_at            timestamptz,
    -- Why the agent last refused a set (kept after a later success, with
    -- its time, as the host's history).
    last_apply_error      text,
    last_apply_error_at   timestamptz,
    effective_config_hash text,
    healthy               boolean,
    health_status         text,
    health_error          text
);

GRANT SELECT ON agent_management TO tripwire_reader;
