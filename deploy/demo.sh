#!/usr/bin/env bash
# `make demo`: TripWire end to end on this machine. A local PostgreSQL cluster,
# a CA and certificates from `tripwire pki`, the OCB-built collector and the
# agent with a demo config; then it trips each tripwire and prints each alert
# as it lands in PostgreSQL, with its latency and the audit-chain status.
# Everything lives under ./.demo; `make demo-stop` (this script with "stop")
# stops it all and removes ./.demo.
#
# Every TCP port is checked before anything starts, and after each start the
# port must be held by the process this run started (its pid, found with
# ss), so another program answering on a demo port is never taken for ours.
# A failed run stops what it started and keeps its logs in ./.demo.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEMO=$ROOT/.demo
PGBIN=/usr/lib/postgresql/15/bin
PGPORT=${TRIPWIRE_DEMO_PGPORT:-55439}
OTLP_PORT=${TRIPWIRE_DEMO_OTLP_PORT:-14317}
COLLECTOR_HEALTH_PORT=${TRIPWIRE_DEMO_COLLECTOR_HEALTH_PORT:-$((OTLP_PORT + 1))}
METRICS_PORT=${TRIPWIRE_DEMO_METRICS_PORT:-18888}
HONEYPORT=${TRIPWIRE_DEMO_HONEYPORT:-12222}
SERVICE_PORT=${TRIPWIRE_DEMO_SERVICE_PORT:-18080}
GRAFANA_PORT=${TRIPWIRE_DEMO_GRAFANA_PORT:-13000}
HOST=$(hostname)
step_no=0
armed="" # set once this run owns .demo: from then on a failure stops what it started

step() { step_no=$((step_no + 1)); printf '\n\033[1m[%d] %s\033[0m\n' "$step_no" "$*"; }
ok() { printf '    \033[32mok\033[0m %s\n' "$*"; }
fail() {
  printf '    \033[31mFAILED\033[0m %s\n' "$1" >&2
  [ -n "${2:-}" ] && printf '    fix: %s\n' "$2" >&2
  exit 1
}
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
psql_demo() { psql -X -q -h "$DEMO/pgsock" -p "$PGPORT" -U postgres -d tripwire "$@"; }

# alive PID [PATTERN]: PID runs (not a zombie) and its command line has PATTERN.
alive() {
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 1
  [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" != Z ] || return 1
  [ -z "${2:-}" ] || tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q -- "$2"
}
# listeners PORT: the pids with a TCP socket listening on PORT, any address.
listeners() { ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -un; }
describe() { echo "pid $1 ($(tr '\0\n' '  ' <"/proc/$1/cmdline" 2>/dev/null | cut -c1-80 | sed 's/ *$//'))"; }
# holders PORT [EXCEPT_PID]: who listens on PORT, but for EXCEPT_PID and its descendants.
holders() {
  local l out=""
  for l in $(listeners "$1"); do
    [ -n "${2:-}" ] && descends "$l" "$2" && continue
    out="$out${out:+, }$(describe "$l")"
  done
  if [ -z "$out" ] && [ -z "${2:-}" ] && [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]; then
    out="a socket whose process ss cannot name"
  fi
  echo "$out"
}
# descends PID ANCESTOR: PID is ANCESTOR or one of its descendants.
descends() {
  local p=$1
  while [ -n "$p" ] && [ "$p" -gt 1 ]; do
    [ "$p" = "$2" ] && return 0
    p=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -d' ' -f2)
  done
  return 1
}
conflict() { # PORT VAR HOLDERS [WHAT]
  fail "port $1 is held by $3${4:+, not by $4}" "stop that process, or move the demo off the port: $2=<free port> make demo"
}

# await NAME PID LOG SECONDS PORT:VAR...: waits until PID (or a child) listens
# on every PORT; fails naming the port and its holder when another process
# holds one, or the log when NAME exited or never listened.
await() {
  local name=$1 pid=$2 log=$3 deadline=$((SECONDS + $4)) spec port mine l h
  shift 4
  while :; do
    mine=1
    for spec in "$@"; do
      port=${spec%%:*} l=0
      for h in $(listeners "$port"); do descends "$h" "$pid" && l=1; done
      [ $l = 1 ] || mine=0
    done
    [ $mine = 1 ] && return 0
    alive "$pid" && [ $SECONDS -lt $deadline ] || break
    sleep 0.2
  done
  for spec in "$@"; do
    port=${spec%%:*}
    h=$(holders "$port" "$pid")
    [ -z "$h" ] || conflict "$port" "${spec#*:}" "$h" "the $name this demo started (pid $pid)"
  done
  alive "$pid" || fail "the $name exited (see ${log#"$ROOT"/})"
  fail "the $name (pid $pid) does not listen on every port of: ${*%%:*} (see ${log#"$ROOT"/})"
}

# stop_started stops every process of the demo in .demo and its cluster.
stop_started() {
  local p pid pids="" left sig
  for p in grafana agent collector service; do
    if [ -f "$DEMO/$p.pid" ]; then
      pid=$(cat "$DEMO/$p.pid")
      kill "$pid" 2>/dev/null && pids="$pids $pid"
      rm -f "$DEMO/$p.pid"
    fi
  done
  if [ -f "$DEMO/pg/PG_VERSION" ]; then
    as_postgres "$PGBIN/pg_ctl" -D "$DEMO/pg" -m fast -w stop >/dev/null 2>&1 || true
  fi
  # SIGTERM lets the collector and agent drain; after 15 s, SIGKILL.
  for sig in TERM KILL; do
    [ $sig = KILL ] && for pid in $pids; do kill -9 "$pid" 2>/dev/null || true; done
    for _ in $(seq 150); do
      left=""
      for pid in $pids; do alive "$pid" && left="$left $pid"; done
      pids=$left
      [ -z "$pids" ] && return 0
      sleep 0.1
    done
  done
}

stop() {
  stop_started
  rm -rf "$DEMO"
  echo "demo stopped and .demo removed"
}

if [ "${1:-}" = stop ]; then stop; exit 0; fi

[ "$(id -u)" = 0 ] || fail "the demo needs root (fanotify and eBPF watchers)" "run: sudo make demo"
# One run at a time: the lock is this script, held until this run ends (the
# processes it starts do not inherit it).
exec 9<"$0"
flock -n 9 || fail "another make demo is starting in this checkout" "wait for it to finish; make demo-stop stops it"
running=""
for p in collector:tripwire-collector agent:tripwire service:http.server grafana:grafana; do
  f=$DEMO/${p%%:*}.pid
  [ -f "$f" ] && alive "$(cat "$f")" "${p#*:}" && running="$running${running:+,} ${p%%:*} (pid $(cat "$f"))"
done
if [ -f "$DEMO/pg/postmaster.pid" ] && alive "$(head -1 "$DEMO/pg/postmaster.pid")" postgres; then
  running="$running${running:+,} PostgreSQL (pid $(head -1 "$DEMO/pg/postmaster.pid"))"
fi
[ -z "$running" ] || fail "a demo is already running from .demo:$running" "use it, or stop it first: make demo-stop"
on_exit() {
  local rc=$?
  if [ "$rc" != 0 ] && [ -n "$armed" ]; then
    stop_started
    echo "    stopped what this run had started; its logs stay in .demo/ (make demo-stop removes them)" >&2
  fi
}
trap on_exit EXIT
rm -rf "$DEMO" # what a finished or failed run left: logs only, nothing runs from it
mkdir -p "$DEMO"
chmod 755 "$DEMO"
armed=1

step "What the demo needs"
./deploy/deps.sh demo || fail "a package the demo needs is missing" "install it, then make demo again"
grafana_bin=$(command -v grafana-server || command -v grafana || true)
# port, the variable that moves it, what listens there
ports=(
  "$PGPORT TRIPWIRE_DEMO_PGPORT PostgreSQL"
  "$OTLP_PORT TRIPWIRE_DEMO_OTLP_PORT collector (OTLP/gRPC)"
  "$COLLECTOR_HEALTH_PORT TRIPWIRE_DEMO_COLLECTOR_HEALTH_PORT collector (health)"
  "$METRICS_PORT TRIPWIRE_DEMO_METRICS_PORT collector (metrics)"
  "$HONEYPORT TRIPWIRE_DEMO_HONEYPORT agent (honeyport)"
  "$SERVICE_PORT TRIPWIRE_DEMO_SERVICE_PORT observed-port service"
)
[ -z "$grafana_bin" ] || ports+=("$GRAFANA_PORT TRIPWIRE_DEMO_GRAFANA_PORT Grafana")
declare -A port_var=()
for p in "${ports[@]}"; do
  read -r port var _ <<<"$p"
  [[ $port =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] || fail "$var=$port is not a TCP port"
  [ -z "${port_var[$port]:-}" ] || fail "port $port is given twice, by ${port_var[$port]} and $var" "give each its own port"
  port_var[$port]=$var
  h=$(holders "$port")
  [ -z "$h" ] || conflict "$port" "$var" "$h"
done
ok "postgresql, nc, curl, ss and python3 are here; ports free: $(for p in "${ports[@]}"; do read -r port _ what <<<"$p"; printf '%s %s; ' "$port" "$what"; done | sed 's/; $//')"

step "PostgreSQL 15"
mkdir -p "$DEMO/pg" "$DEMO/pgsock"
chown postgres:postgres "$DEMO/pg" "$DEMO/pgsock"
chmod 700 "$DEMO/pg"
as_postgres "$PGBIN/initdb" -D "$DEMO/pg" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$DEMO/initdb.log" 2>&1 ||
  fail "initdb failed (see .demo/initdb.log)"
if ! as_postgres "$PGBIN/pg_ctl" -D "$DEMO/pg" -o "-p $PGPORT -k $DEMO/pgsock -c listen_addresses=127.0.0.1" \
  -l "$DEMO/pg/server.log" -w start >/dev/null 9<&-; then
  h=$(holders "$PGPORT")
  [ -z "$h" ] || conflict "$PGPORT" TRIPWIRE_DEMO_PGPORT "$h" "the PostgreSQL this demo started"
  fail "PostgreSQL did not start (see .demo/pg/server.log)"
fi
await PostgreSQL "$(head -1 "$DEMO/pg/postmaster.pid")" "$DEMO/pg/server.log" 10 "$PGPORT:TRIPWIRE_DEMO_PGPORT"
as_postgres psql -X -q -h "$DEMO/pgsock" -p "$PGPORT" -U postgres -c "CREATE DATABASE tripwire" >/dev/null
ok "cluster (pid $(head -1 "$DEMO/pg/postmaster.pid")) on 127.0.0.1:$PGPORT, data in .demo/pg"

step "Building the agent and the collector (the first collector build takes a few minutes)"
make -s build >"$DEMO/build.log" 2>&1 9<&- || fail "building the agent failed (see .demo/build.log)"
ok "bin/tripwire $(bin/tripwire version | head -1)"
make -s collector >>"$DEMO/build.log" 2>&1 9<&- || fail "building the collector failed (see .demo/build.log)"
ok "bin/tripwire-collector"

step "Certificates with tripwire pki"
bin/tripwire pki init --dir "$DEMO/pki" >/dev/null
bin/tripwire pki issue-server --dir "$DEMO/pki" --dns localhost --ip 127.0.0.1 >/dev/null
bin/tripwire pki issue-agent "$HOST" --dir "$DEMO/pki" >/dev/null
ok "CA, collector certificate (localhost), agent certificate (CN=$HOST) in .demo/pki"

step "Starting tripwire-collector"
TRIPWIRE_PKI_DIR=$DEMO/pki TRIPWIRE_ENDPOINT=127.0.0.1:$OTLP_PORT TRIPWIRE_HEALTH_ENDPOINT=127.0.0.1:$COLLECTOR_HEALTH_PORT \
  TRIPWIRE_METRICS_HOST=127.0.0.1 TRIPWIRE_METRICS_PORT=$METRICS_PORT TRIPWIRE_QUEUE_DIR=$DEMO/queue \
  TRIPWIRE_PG_DSN="postgres://postgres@127.0.0.1:$PGPORT/tripwire?sslmode=disable" GOGC=400 \
  bin/tripwire-collector --config collector/config.yaml >"$DEMO/collector.log" 2>&1 9<&- &
echo $! >"$DEMO/collector.pid"
await collector "$(cat "$DEMO/collector.pid")" "$DEMO/collector.log" 60 "$OTLP_PORT:TRIPWIRE_DEMO_OTLP_PORT" \
  "$COLLECTOR_HEALTH_PORT:TRIPWIRE_DEMO_COLLECTOR_HEALTH_PORT" "$METRICS_PORT:TRIPWIRE_DEMO_METRICS_PORT"
# The ports are the collector's own; now its health check must say it is ready.
for _ in $(seq 60); do
  curl -fs "http://127.0.0.1:$COLLECTOR_HEALTH_PORT/" >/dev/null 2>&1 && break
  alive "$(cat "$DEMO/collector.pid")" || fail "the collector exited (see .demo/collector.log)"
  sleep 0.5
done
curl -fs "http://127.0.0.1:$COLLECTOR_HEALTH_PORT/" >/dev/null || fail "the collector is not healthy (see .demo/collector.log)"
ok "collector (pid $(cat "$DEMO/collector.pid")): OTLP/gRPC with mTLS on 127.0.0.1:$OTLP_PORT, health on :$COLLECTOR_HEALTH_PORT, metrics on :$METRICS_PORT, schema applied"

step "Starting the agent"
# A real service for the observed port.
python3 -m http.server "$SERVICE_PORT" --bind 127.0.0.1 --directory "$DEMO" >"$DEMO/service.log" 2>&1 9<&- &
echo $! >"$DEMO/service.pid"
await "observed-port service" "$(cat "$DEMO/service.pid")" "$DEMO/service.log" 20 "$SERVICE_PORT:TRIPWIRE_DEMO_SERVICE_PORT"
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
bin/tripwire start --config "$DEMO/agent.yaml" >"$DEMO/agent.log" 2>&1 9<&- &
echo $! >"$DEMO/agent.pid"
await agent "$(cat "$DEMO/agent.pid")" "$DEMO/agent.log" 30 "$HONEYPORT:TRIPWIRE_DEMO_HONEYPORT"
for _ in $(seq 40); do
  bin/tripwire status --socket "$DEMO/agent/health.sock" >/dev/null 2>&1 && break
  alive "$(cat "$DEMO/agent.pid")" || fail "the agent exited (see .demo/agent.log)"
  sleep 0.25
done
bin/tripwire status --socket "$DEMO/agent/health.sock" >"$DEMO/status.txt" 2>&1 || fail "the agent is not healthy (see .demo/agent.log)"
# The health socket must be the agent's own too.
sock_pid=$(ss -Hxlp "src $DEMO/agent/health.sock" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
[ -n "$sock_pid" ] && descends "$sock_pid" "$(cat "$DEMO/agent.pid")" ||
  fail "the health socket is not the agent's (held by ${sock_pid:+$(describe "$sock_pid")}${sock_pid:-nobody})"
grep '^watcher' "$DEMO/status.txt" | sed 's/^/    /'
ok "agent (pid $(cat "$DEMO/agent.pid")) running, honeyport on 127.0.0.1:$HONEYPORT, health on .demo/agent/health.sock"

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
    GF_SERVER_HTTP_ADDR=127.0.0.1 GF_SERVER_HTTP_PORT=$GRAFANA_PORT GF_SECURITY_ADMIN_PASSWORD=$admin_password \
    GF_PLUGINS_ALLOW_LOADING_UNSIGNED_PLUGINS=tripwiresec-tripwire-app,tripwiresec-tripwire-datasource \
    TRIPWIRE_PG_HOST=127.0.0.1 TRIPWIRE_PG_PORT=$PGPORT TRIPWIRE_PG_DATABASE=tripwire TRIPWIRE_PG_USER=postgres \
    TRIPWIRE_PG_SSLMODE=disable TRIPWIRE_PG_PASSWORD= \
    "$grafana_bin" "${args[@]}" --homepath "$home" \
    >"$G/grafana.log" 2>&1 9<&- &
  echo $! >"$DEMO/grafana.pid"
  await Grafana "$(cat "$DEMO/grafana.pid")" "$G/grafana.log" 60 "$GRAFANA_PORT:TRIPWIRE_DEMO_GRAFANA_PORT"
  for _ in $(seq 60); do curl -fs "http://127.0.0.1:$GRAFANA_PORT/api/health" >/dev/null 2>&1 && break; sleep 0.5; done
  curl -fs "http://127.0.0.1:$GRAFANA_PORT/api/health" >/dev/null 2>&1 || fail "Grafana did not start (see .demo/grafana/grafana.log)"
  ok "Grafana on http://127.0.0.1:$GRAFANA_PORT (admin / $admin_password): Apps → TripWire, dashboard TripWire overview"
fi

printf '\nTripWire is running. Try: cat %s ; nc -z 127.0.0.1 %s\n' "$DEMO/decoys/passwords.txt" "$HONEYPORT"
printf 'Then: psql -h %s -p %s -U postgres tripwire -c "SELECT event_time, rule_name, summary FROM alerts ORDER BY event_time DESC LIMIT 10"\n' "$DEMO/pgsock" "$PGPORT"
printf 'Stop with: make demo-stop\n'
