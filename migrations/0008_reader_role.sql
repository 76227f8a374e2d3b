-- tripwire_reader: what the Grafana plugin reads with. It may SELECT the
-- tables the plugin shows and nothing else: no writes, no chain_forks or
-- chain_losses. It cannot log in; the plugin's login
-- role is made a member (GRANT tripwire_reader TO grafana) and the plugin
-- sets it as its role on every connection. Roles are cluster-wide, so it
-- may exist already (another TripWire database on the same server).
DO $$
BEGIN
    CREATE ROLE tripwire_reader NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;
GRANT USAGE ON SCHEMA public TO tripwire_reader;
GRANT SELECT ON hosts, alerts, audit_entries, chain_heads, chain_breaks TO tripwire_reader;
-- Narrow what a deployment granted more broadly before this migration
-- existed (compose's init script grants SELECT on every table the
-- collector's role creates; schema_migrations, a list of versions, is
-- left as it is: it is not created by a migration).
REVOKE ALL ON chain_forks, chain_losses FROM tripwire_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT ON TABLES FROM tripwire_reader;
