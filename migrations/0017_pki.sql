-- Certificates handed out by the collectors over OpAMP (enrollment and
-- renewal), the one-time bootstrap tokens that allow a first enrollment, and
-- the revocations every collector replica refuses. Tokens and revocations are
-- written by `tripwire pki` on the CA host (token, revoke --dsn); issued
-- certificates by the collectors' tripwire_opamp extension.

-- Only the SHA-256 of a token is kept: a copy of this table enrolls nobody.
-- A token is good once (used_at), for one host, until expires_at; the check
-- and the use are one UPDATE, so two replicas cannot both accept it.
CREATE TABLE pki_bootstrap_tokens (
    token_hash  bytea       PRIMARY KEY CHECK (length(token_hash) = 32),
    host_name   text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    used_serial text
);

CREATE TABLE pki_certificates (
    serial     text        PRIMARY KEY, -- lowercase hex, as `tripwire pki list` prints it
    host_name  text        NOT NULL,
    how        text        NOT NULL CHECK (how IN ('enroll', 'renew')),
    not_before timestamptz NOT NULL,
    not_after  timestamptz NOT NULL,
    issued_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pki_certificates_host ON pki_certificates (host_name);

CREATE TABLE pki_revocations (
    serial     text        PRIMARY KEY,
    host_name  text,
    revoked_at timestamptz NOT NULL DEFAULT now()
);

-- Each collector LISTENs and reloads its revoked serials at once; it also
-- reloads periodically in case a notification was missed.
CREATE FUNCTION tripwire_revocations_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tripwire_revocations', '');
    RETURN NULL;
END $$;
CREATE TRIGGER pki_revocations_notify AFTER INSERT OR UPDATE OR DELETE ON pki_revocations
    FOR EACH STATEMENT EXECUTE FUNCTION tripwire_revocations_notify();

GRANT SELECT ON pki_certificates, pki_revocations TO tripwire_reader;
