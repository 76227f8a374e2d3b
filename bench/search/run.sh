#!/bin/sh
# What a free-text index on alerts costs ingest.
# 1. 50-row INSERTs from 4 clients into alerts, in alternating rounds on one
#    throwaway PostgreSQL cluster, with: no search index; migration 0012's GIN
#    on search_words (words and neighbouring pairs, split by the writer, as
#    the exporter does); a GIN
#    on a tsvector expression of the same text (words split by PostgreSQL);
#    trigram on that text. Prints rows/s per variant and its share of none.
# 2. The exporter against raw COPY (BenchmarkExportVsRawCopy, 4 workers), with
#    and without the index, alternating.
# Needs root (initdb runs as postgres) and the PostgreSQL 15 binaries.
set -eu
cd "$(dirname "$0")/../.."
BIN=/usr/lib/postgresql/15/bin
ROUNDS=${ROUNDS:-2}
TX=${TX:-1000}
D=$(mktemp -d /tmp/tripwire-search-bench.XXXXXX)
chown postgres:postgres "$D"
runuser -u postgres -- "$BIN/initdb" -D "$D/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
runuser -u postgres -- "$BIN/pg_ctl" -D "$D/data" -o "-p 55433 -k $D -c listen_addresses=''" -l "$D/server.log" -w start >/dev/null
trap 'runuser -u postgres -- "$BIN/pg_ctl" -D "$D/data" -m immediate stop >/dev/null; rm -rf "$D"' EXIT
P="psql -h $D -p 55433 -U postgres -q -v ON_ERROR_STOP=1"
$P -c "CREATE DATABASE bench"
for f in migrations/0*.sql; do
  $P -d bench -f "$f" >/dev/null
done
$P -d bench -c "CREATE EXTENSION IF NOT EXISTS pg_trgm" \
  -c "INSERT INTO hosts (host_name, status, last_seen) VALUES ('bench-host', 'ONLINE', now())" \
  -c "CREATE TABLE staging AS SELECT g AS id, gen_random_uuid() AS alert_id, now() - random() * interval '20 days' AS event_time,
        'rule-' || (g % 50) AS rule_name, g AS seq,
        'tripwire.file.access /srv/data/file-' || (g % 1000) || ' by pid ' || (g % 65536) || ' (/usr/bin/cat)' AS summary,
        jsonb_build_object('event.name','tripwire.file.access','file.path','/srv/data/file-' || (g % 1000),
          'observed_time_unix_nano',1795694400001001000+g,'process.command_line','cat /srv/data/file-' || (g % 1000) || ' --flag',
          'process.executable.path','/usr/bin/cat','process.parent_pid',1,'process.pid',g % 65536,'severity_text','WARN',
          'time_unix_nano',1795694400001000000+g,'tripwire.alert_id',gen_random_uuid()::text,'tripwire.rule.name','rule-' || (g % 50),
          'tripwire.seq',g,'tripwire.type','file','tripwire.watcher.mechanism','fanotify','process.user.id',1000,'process.user.name','u' || (g % 30)) AS event_detail
      FROM generate_series(1, 400000) g" \
  -c "ALTER TABLE staging ADD COLUMN search_words text[]" \
  -c "UPDATE staging SET search_words = (SELECT array_agg(DISTINCT t ORDER BY t) FROM (
        SELECT unnest(w || ARRAY(SELECT w[i] || ' ' || w[i + 1] FROM generate_series(1, cardinality(w) - 1) i)) t
        FROM (SELECT array_remove(regexp_split_to_array(alert_search_text(summary, rule_name, 'bench-host', event_detail), '[^[:alnum:]]+'), '') w) ws) ts)" \
  -c "CREATE UNIQUE INDEX ON staging (id)"

# The index migration 0012 creates, so each round can drop and rebuild it.
words=$($P -d bench -Atc "SELECT replace(pg_get_indexdef('alerts_search_idx'::regclass), ' ON ONLY ', ' ON ')")
# variant NAME DDL WORDS: rows/s of 4 clients × $TX inserts of 50 rows,
# WORDS being what goes into search_words.
variant() {
  $P -d bench -c "TRUNCATE alerts" -c "DROP INDEX IF EXISTS alerts_search_idx" >/dev/null 2>&1
  [ -z "$2" ] || $P -d bench -c "$2" >/dev/null
  cat > "$D/insert.sql" <<SQL
\set g random(0, 7999)
INSERT INTO alerts (alert_id, event_time, received_at, host_id, host_name, event_name, tripwire_type, rule_name, severity, seq, summary, event_detail, search_words)
SELECT s.alert_id, s.event_time, now(), h.host_id, h.host_name, 'tripwire.file.access', 'file', s.rule_name, 'WARN', s.seq, s.summary, s.event_detail, $3
FROM staging s, hosts h WHERE s.id > :g * 50 AND s.id <= :g * 50 + 50 ON CONFLICT DO NOTHING;
SQL
  tps=$("$BIN/pgbench" -h "$D" -p 55433 -U postgres -n -c 4 -j 2 -t "$TX" -f "$D/insert.sql" bench 2>&1 | sed -n 's/^tps = \([0-9.]*\) .*/\1/p')
  echo "$1 $tps"
}
tsv="CREATE INDEX alerts_search_idx ON alerts USING gin (to_tsvector('simple', translate(alert_search_text(summary, rule_name, host_name, event_detail), '/.-_:()', '       ')))"
trgm="CREATE INDEX alerts_search_idx ON alerts USING gin (alert_search_text(summary, rule_name, host_name, event_detail) gin_trgm_ops)"
for r in $(seq "$ROUNDS"); do
  variant none "" NULL
  variant words-0012 "$words" s.search_words
  variant tsvector-expression "$tsv" NULL
  variant trigram-search-text "$trgm" NULL
done | awk '{sum[$1] += 50 * $2; n[$1]++; order[$1] = order[$1] ? order[$1] : ++k; name[k] = $1}
  END { base = sum["none"] / n["none"]
        for (i = 1; i <= k; i++) { v = name[i]; r = sum[v] / n[v]
          printf "%-22s %8.0f rows/s  %3.0f %% of no index\n", v, r, 100 * r / base } }'

echo "exporter vs raw COPY of the same rows, with and without the search index (alternating runs; both write search_words):"
for r in $(seq "$ROUNDS"); do
  for idx in on off; do
    printf 'index %-3s ' "$idx"
    TRIPWIRE_BENCH_SEARCH_INDEX=$idx go test -run '^$' -bench 'BenchmarkExportVsRawCopy/workers=4' -benchtime "${EXPORT_BATCHES:-30}x" ./tripwireexporter |
      sed -n 's/^.*BenchmarkExportVsRawCopy workers=4: //p'
  done
done
