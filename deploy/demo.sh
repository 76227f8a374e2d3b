#!/usr/bin/env bash
# `make demo`: TripWire end to end on this machine. A local PostgreSQL cluster,
# a CA and certificates from `tripwire pki`, the OCB-built collector and the
# agent with a demo config; then it trips each tripwire and prints each alert
# as it lands in PostgreSQL, with its latency and the audit-chain status.
# Everything lives under ./.demo; `make demo-stop` (this script with "stop")
# stops it all and removes ./.demo.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEMO=$ROOT/.demo
PGBIN=/usr/lib/postgresql/15/bin
PGPORT=${TRIPWIRE_DEMO_PGPORT:-55439}
OTLP_PORT=${TRIPWIRE_DEMO_OTLP_PORT:-14317}
HONEYPORT=${TRIPWIRE_DEMO_HONEYPORT:-12222}
SERVICE_PORT=${TRIPWIRE_DEMO_SERVICE_PORT:-18080}
HOST=$(hostname)
step_no=0

step() { step_no=$((step_no + 1)); printf '\n\033[1m[%d] %s\033[0m\n' "$step_no" "$*"; }
ok() { printf '    \033[32mok\033[0m %s\n' "$*"; }
fail() {
  printf '    \033[31mFAILED\033[0m %s\n' "$1" >&2
  [ -n "${2:-}" ] && printf '    fix: %s\n' "$2" >&2
  exit 1
}
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
psql_demo() { psql -X -q -h "$DEMO/pgsock" -p "$PGPORT" -U postgres -d tripwire "$@"; }

stop() {
  for p in grafana agent collector service; do
    if [ -f "$DEMO/$p.pid" ]; then
      kill "$(cat "$DEMO/$p.pid")" 2>/dev/null || true
    fi
  done
  if [ -f "$DEMO/pg/PG_VERSION" ]; then
    as_postgres "$PGBIN/pg_ctl" -D "$DEMO/pg" -m fast stop >/dev/null 2>&1 || true
  fi
  sleep 1
  rm -rf "$DEMO"
  echo "demo stopped and .demo removed"
}

if [ "${1:-}" = stop ]; then stop; exit 0; fi

[ "$(id -u)" = 0 ] || fail "the demo needs root (fanotify and eBPF watchers)" "run: sudo make demo"
if [ -d "$DEMO" ]; then
  echo "a previous demo is still here: stopping it first"
  stop
fi
mkdir -p "$DEMO"
chmod 755 "$DEMO"

step "PostgreSQL 15"
if [ ! -x "$PGBIN/initdb" ]; then
  echo "    installing PostgreSQL from Debian's packages"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) ||
    fail "could not install PostgreSQL" "apt-get install postgresql"
fi
command -v psql >/dev/null || fail "psql is missing" "apt-get install postgresql-client"
for tool in nc curl; do
  if ! command -v $tool >/dev/null; then
    pkg=$tool; [ $tool = nc ] && pkg=netcat-openbsd
    echo "    installing $pkg (used to trip the demo tripwires)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkg >/dev/null || fail "could not install $pkg" "apt-get install $pkg"
  fi
done
mkdir -p "$DEMO/pg" "$DEMO/pgsock"
chown postgres:postgres "$DEMO/pg" "$DEMO/pgsock"
chmod 700 "$DEMO/pg"
as_postgres "$PGBIN/initdb" -D "$DEMO/pg" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$DEMO/initdb.log" 2>&1 ||
  fail "initdb failed (see .demo/initdb.log)"
as_postgres "$PGBIN/pg_ctl" -D "$DEMO/pg" -o "-p $PGPORT -k $DEMO/pgsock -c listen_addresses=127.0.0.1" \
  -l "$DEMO/pg/server.log" -w start >/dev/null || fail "PostgreSQL did not start (see .demo/pg/server.log)" "is port $PGPORT free? set TRIPWIRE_DEMO_PGPORT"
as_postgres psql -X -q -h "$DEMO/pgsock" -p "$PGPORT" -U postgres -c "CREATE DATABASE tripwire" >/dev/null
ok "cluster on 127.0.0.1:$PGPORT, data in .demo/pg"

step "Building the agent and the collector (the first collector build takes a few minutes)"
make -s build >"$DEMO/build.log" 2>&1 || fail "building the agent failed (see .demo/build.log)"
ok "bin/tripwire $(bin/tripwire version | head -1)"
make -s collector >>"$DEMO/build.log" 2>&1 || fail "building the collector failed (see .demo/build.log)"
ok "bin/tripwire-collector"

step "Certificates with tripwire pki"
bin/tripwire pki init --dir "$DEMO/pki" >/dev/null
bin/tripwire pki issue-server --dir "$DEMO/pki" --dns localhost --ip 127.0.0.1 >/dev/null
bin/tripwire pki issue-agent "$HOST" --dir "$DEMO/pki" >/dev/null
ok "CA, collector certificate (localhost), agent certificate (CN=$HOST) in .demo/pki"

step "Starting tripwire-collector"
TRIPWIRE_PKI_DIR=$DEMO/pki TRIPWIRE_ENDPOINT=127.0.0.1:$OTLP_PORT TRIPWIRE_HEALTH_ENDPOINT=127.0.0.1:$((OTLP_PORT + 1)) \
  TRIPWIRE_QUEUE_DIR=$DEMO/queue \
  TRIPWIRE_PG_DSN="postgres://postgres@127.0.0.1:$PGPORT/tripwire?sslmode=disable" \
  bin/tripwire-collector --config collector/config.yaml >"$DEMO/collector.log" 2>&1 &
echo $! >"$DEMO/collector.pid"
for _ in $(seq 60); do
  curl -fs "http://127.0.0.1:$((OTLP_PORT + 1))/" >/dev/null 2>&1 && break
  kill -0 "$(cat "$DEMO/collector.pid")" 2>/dev/null || fail "the collector exited (see .demo/collector.log)"
  sleep 0.5
done
curl -fs "http://127.0.0.1:$((OTLP_PORT + 1))/" >/dev/null || fail "the collector is not healthy (see .demo/collector.log)"
ok "OTLP/gRPC with mTLS on 127.0.0.1:$OTLP_PORT, schema applied"

step "Starting the agent"
# A real service for the observed port.
python3 -m http.server "$SERVICE_PORT" --bind 127.0.0.1 --directory "$DEMO" >"$DEMO/service.log" 2>&1 &
echo $! >"$DEMO/service.pid"
mkdir -p "$DEMO/decoys"
cat >"$DEMO/agent.yaml" <<EOF
host:
  name: $HOST
rules:
  - name: demo-honeyfile
    type: file
    severity: CRITICAL
    paths: [$DEMO/decoys/passwords.txt]
    plant:
      content: "admin: hunter2\n"
      mode: "0640"
  - name: demo-honeyport
    type: network
    severity: CRITICAL
    mode: honeyport
    ports: [$HONEYPORT]
    address: 127.0.0.1
  - name: demo-observed-port
    type: network
    severity: WARN
    mode: observe
    ports: [$SERVICE_PORT]
  - name: demo-netcat
    type: process
    severity: WARN
    names: [nc]
transport:
  endpoint: localhost:$OTLP_PORT
  ca: $DEMO/pki/ca.crt
  cert: $DEMO/pki/agents/$HOST.crt
  key: $DEMO/pki/agents/$HOST.key
spool:
  path: $DEMO/agent/spool.db
audit:
  path: $DEMO/agent/audit.log
health:
  socket: $DEMO/agent/health.sock
EOF
mkdir -p "$DEMO/agent"
bin/tripwire validate --config "$DEMO/agent.yaml" >/dev/null || fail "the demo config does not validate"
bin/tripwire start --config "$DEMO/agent.yaml" >"$DEMO/agent.log" 2>&1 &
echo $! >"$DEMO/agent.pid"
for _ in $(seq 40); do
  bin/tripwire status --socket "$DEMO/agent/health.sock" >/dev/null 2>&1 && break
  kill -0 "$(cat "$DEMO/agent.pid")" 2>/dev/null || fail "the agent exited (see .demo/agent.log)"
  sleep 0.25
done
bin/tripwire status --socket "$DEMO/agent/health.sock" >"$DEMO/status.txt" 2>&1 || fail "the agent is not healthy (see .demo/agent.log)"
grep '^watcher' "$DEMO/status.txt" | sed 's/^/    /'
ok "agent running, health on $DEMO/agent/health.sock"

step "Tripping each tripwire"
sleep 1
cat "$DEMO/decoys/passwords.txt" >/dev/null && ok "read the honeyfile"
printf 'hello\n' | nc -w 1 127.0.0.1 "$HONEYPORT" >/dev/null 2>&1 || true
ok "connected to the honeyport with nc (also trips demo-netcat)"
curl -s -o /dev/null "http://127.0.0.1:$SERVICE_PORT/" && ok "connected to the observed port"

step "Alerts as they land in PostgreSQL"
want="demo-honeyfile demo-honeyport demo-observed-port demo-netcat"
declare -A seen=()
deadline=$((SECONDS + 30))
while [ ${#seen[@]} -lt 4 ] && [ $SECONDS -lt $deadline ]; do
  for rule in $want; do
    [ -n "${seen[$rule]:-}" ] && continue
    row=$(psql_demo -At -F ' | ' -c "SELECT severity, event_name, host_name, summary,
        round(extract(epoch FROM (received_at - event_time)) * 1000)::int || ' ms'
      FROM alerts WHERE rule_name = '$rule' ORDER BY event_time LIMIT 1" 2>/dev/null || true)
    if [ -n "$row" ]; then
      seen[$rule]=1
      printf '    %-20s %s\n' "$rule" "$row"
    fi
  done
  sleep 0.2
done
missing=""
for rule in $want; do [ -n "${seen[$rule]:-}" ] || missing="$missing $rule"; done
[ -z "$missing" ] || fail "no alert in PostgreSQL for:$missing" "see .demo/agent.log and .demo/collector.log"
ok "every demo tripwire's alert is in PostgreSQL (latency = committed row minus trip time)"

step "Audit chain"
bin/tripwire audit verify "$DEMO/agent/audit.log" | sed 's/^/    agent log: /' || fail "the local audit log does not verify"
head=$(psql_demo -At -F ' ' -c "SELECT h.host_name, c.seq, left(c.hash, 16) FROM chain_heads c JOIN hosts h USING (host_id)")
breaks=$(psql_demo -At -c "SELECT count(*) FROM chain_breaks WHERE kind <> 'accounted_gap'")
echo "    central: host seq hash = $head; breaks: $breaks"
[ "$breaks" = 0 ] || fail "the collector found breaks in the chain"
ok "chain verified on the host and centrally"

grafana_bin=$(command -v grafana-server || command -v grafana || true)
if [ -n "$grafana_bin" ]; then
  step "Grafana with the TripWire app"
  [ -s grafana-plugin/dist/plugin.json ] || make -s plugin >"$DEMO/plugin.log" 2>&1 ||
    fail "building the plugin failed (see .demo/plugin.log)" "make plugin"
  G=$DEMO/grafana
  mkdir -p "$G/plugins" "$G/data" "$G/provisioning"
  ln -s "$ROOT/grafana-plugin/dist" "$G/plugins/tripwiresec-tripwire-app"
  # The overview dashboard comes with the app (its plugin.json includes it).
  cp -r dashboards/provisioning/. "$G/provisioning/"
  admin_password=$(head -c 12 /dev/urandom | base64 | tr -d '/+=')
  args=(); [ "$(basename "$grafana_bin")" = grafana ] && args=(server)
  # Grafana's home holds conf/defaults.ini: beside its binary, or the packages' place.
  home=${GRAFANA_HOME:-}
  for h in "$(dirname "$(dirname "$(readlink -f "$grafana_bin")")")" /usr/share/grafana; do
    [ -z "$home" ] && [ -f "$h/conf/defaults.ini" ] && home=$h
  done
  [ -n "$home" ] || fail "cannot find Grafana's home (conf/defaults.ini)" "set GRAFANA_HOME"
  GF_PATHS_DATA=$G/data GF_PATHS_PLUGINS=$G/plugins GF_PATHS_PROVISIONING=$G/provisioning GF_PATHS_LOGS=$G \
    GF_SERVER_HTTP_ADDR=127.0.0.1 GF_SERVER_HTTP_PORT=13000 GF_SECURITY_ADMIN_PASSWORD=$admin_password \
    GF_PLUGINS_ALLOW_LOADING_UNSIGNED_PLUGINS=tripwiresec-tripwire-app,tripwiresec-tripwire-datasource \
    TRIPWIRE_PG_HOST=127.0.0.1 TRIPWIRE_PG_PORT=$PGPORT TRIPWIRE_PG_DATABASE=tripwire TRIPWIRE_PG_USER=postgres \
    TRIPWIRE_PG_SSLMODE=disable TRIPWIRE_PG_PASSWORD= \
    "$grafana_bin" "${args[@]}" --homepath "$home" \
    >"$G/grafana.log" 2>&1 &
  echo $! >"$DEMO/grafana.pid"
  for _ in $(seq 60); do curl -fs http://127.0.0.1:13000/api/health >/dev/null 2>&1 && break; sleep 0.5; done
  curl -fs http://127.0.0.1:13000/api/health >/dev/null 2>&1 || fail "Grafana did not start (see .demo/grafana/grafana.log)"
  ok "Grafana on http://127.0.0.1:13000 (admin / $admin_password): Apps → TripWire, dashboard TripWire overview"
fi

printf '\nTripWire is running. Try: cat %s ; nc -z 127.0.0.1 %s\n' "$DEMO/decoys/passwords.txt" "$HONEYPORT"
printf 'Then: psql -h %s -p %s -U postgres tripwire -c "SELECT event_time, rule_name, summary FROM alerts ORDER BY event_time DESC LIMIT 10"\n' "$DEMO/pgsock" "$PGPORT"
printf 'Stop with: make demo-stop\n'
