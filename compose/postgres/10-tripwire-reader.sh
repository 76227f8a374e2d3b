#!/bin/sh
# Runs once, when the PostgreSQL container initialises its data directory:
# the login role Grafana's TripWire datasource uses. It owns nothing and can
# write nothing. The tables do not exist yet (the collector's migrations
# create them, as tripwire), so it is granted SELECT on what tripwire
# creates in public; migrations that grant tripwire_reader exactly what the
# plugin reads narrow that.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v reader_password="$TRIPWIRE_PG_READER_PASSWORD" <<'SQL'
CREATE ROLE tripwire_reader LOGIN PASSWORD :'reader_password'
  NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
GRANT CONNECT ON DATABASE tripwire TO tripwire_reader;
GRANT USAGE ON SCHEMA public TO tripwire_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE tripwire IN SCHEMA public GRANT SELECT ON TABLES TO tripwire_reader;
SQL
