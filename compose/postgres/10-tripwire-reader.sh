#!/bin/sh
# Runs once, when the PostgreSQL container initialises its data directory:
# the login role Grafana's TripWire datasource uses. It can read only what
# the migrations grant to tripwire_reader (SELECT on the tables the plugin
# reads); it owns nothing and can write nothing.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v reader_password="$TRIPWIRE_PG_READER_PASSWORD" <<'SQL'
CREATE ROLE tripwire_reader LOGIN PASSWORD :'reader_password'
  NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
GRANT CONNECT ON DATABASE tripwire TO tripwire_reader;
GRANT USAGE ON SCHEMA public TO tripwire_reader;
SQL
