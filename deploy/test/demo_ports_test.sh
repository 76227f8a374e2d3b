#!/usr/bin/env bash
# Tests make demo's port checks (deploy/demo.sh) with real listeners:
#  - each demo port held before the run: the run fails at step 1, naming the
#    port, the holder's pid and the TRIPWIRE_DEMO_* variable, and starts nothing;
#  - a port taken after the check, just before its process starts (the
#    listener is armed when the step before appears in the output): the run
#    fails at that process's step, naming the port and holder instead of
#    trusting whoever answers, and stops everything it had started;
#  - a second run while one is under way says so and leaves the first alone.
# Needs root (as make demo does). Uses its own free ports, never the defaults.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
demo=$ROOT/deploy/demo.sh
[ "$(id -u)" = 0 ] || { echo "demo_ports_test.sh: needs root, as make demo does"; exit 1; }
if [ -d .demo ] && ls .demo/*.pid >/dev/null 2>&1; then
  echo "demo_ports_test.sh: a demo runs in this checkout; make demo-stop first"
  exit 1
fi
pass=0 failed=0
check() { # NAME GOT WANT
  if [ "$2" = "$3" ]; then pass=$((pass + 1)); else failed=$((failed + 1)); echo "FAIL $1: got '$2', want '$3'"; fi
}
contains() { # NAME TEXT NEEDLE
  if grep -qF -- "$3" <<<"$2"; then pass=$((pass + 1)); else failed=$((failed + 1)); echo "FAIL $1: no '$3' in:"; sed 's/^/    | /' <<<"$2"; fi
}

tmp=$(mktemp -d)
occupiers=()
cleanup() {
  for p in "${occupiers[@]}"; do kill "$p" 2>/dev/null || true; done
  "$demo" stop >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

listening() { [ -n "$(ss -Hltn "sport = :$1")" ]; }
# Six consecutive free ports, below the kernel's ephemeral range: a port in
# it may be any connection's source port the moment an occupier binds it.
ephemeral_low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
while :; do
  base=$((10000 + RANDOM % (ephemeral_low - 10006)))
  free=1
  for i in 0 1 2 3 4 5; do listening $((base + i)) && free=0; done
  [ $free = 1 ] && break
done
export TRIPWIRE_DEMO_PGPORT=$base TRIPWIRE_DEMO_OTLP_PORT=$((base + 1)) TRIPWIRE_DEMO_COLLECTOR_HEALTH_PORT=$((base + 2)) \
  TRIPWIRE_DEMO_METRICS_PORT=$((base + 3)) TRIPWIRE_DEMO_HONEYPORT=$((base + 4)) TRIPWIRE_DEMO_SERVICE_PORT=$((base + 5))
all_ports="$base $((base + 1)) $((base + 2)) $((base + 3)) $((base + 4)) $((base + 5))"

# occupy PORT: a listener on 127.0.0.1:PORT that binds once $tmp/go-PORT
# exists (so it can be armed within milliseconds); prints its pid.
occupy() {
  rm -f "$tmp/go-$1" "$tmp/go-$1.ok"
  python3 -c '
import os, signal, socket, sys, time
port, flag = int(sys.argv[1]), sys.argv[2]
while not os.path.exists(flag):
    time.sleep(0.002)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the demo servers: TIME_WAIT does not block
s.bind(("127.0.0.1", port))
s.listen()
open(flag + ".ok", "w").close()
signal.pause()
' "$1" "$tmp/go-$1" >/dev/null 2>&1 &
  occupiers+=($!)
  echo $!
}
arm() {
  touch "$tmp/go-$1"
  for _ in $(seq 500); do [ -e "$tmp/go-$1.ok" ] && return 0; sleep 0.01; done
  echo "occupier of $1 did not listen"; exit 1
}

# after_failure NAME OUT OCCUPIER PORT: what the run started is stopped.
after_failure() {
  local name=$1 out=$2 occ=$3 port=$4 p others=""
  for p in $(grep -o 'pid [0-9]*' <<<"$out" | cut -d' ' -f2 | sort -u); do
    # A zombie is dead: this machine's init may reap it a moment later.
    [ "$p" != "$occ" ] && ps -o stat= -p "$p" 2>/dev/null | grep -qv Z && others="$others $p"
  done
  check "$name: processes the run started still alive" "$others" ""
  [ -z "$others" ] || sed 's/^/    | /' <<<"$out"
  others=""
  for p in $all_ports; do
    [ "$p" = "$port" ] && continue
    listening "$p" && others="$others $p"
  done
  check "$name: demo ports still listened on" "$others" ""
  check "$name: pid files left" "$(ls .demo/*.pid .demo/pg/postmaster.pid 2>/dev/null || true)" ""
  check "$name: the occupier still holds port $port" "$(kill -0 "$occ" 2>/dev/null && echo yes)" yes
}

# failed_step OUT: the number of the step whose output holds FAILED.
failed_step() { grep -oE '\[[0-9]+\] |FAILED' <<<"$1" | awk '/FAILED/ { print s; exit } { s = substr($0, 2, length($0) - 3) }'; }

# 1. Held before the run: step 1 fails and nothing starts.
for spec in PGPORT OTLP_PORT COLLECTOR_HEALTH_PORT METRICS_PORT HONEYPORT SERVICE_PORT; do
  var=TRIPWIRE_DEMO_$spec
  port=${!var}
  occ=$(occupy "$port")
  arm "$port"
  set +e
  out=$("$demo" 2>&1)
  rc=$?
  set -e
  name="held before the run: $var"
  check "$name: exit code" "$rc" 1
  check "$name: failed at step" "$(failed_step "$out")" 1
  contains "$name: port and holder" "$out" "port $port is held by pid $occ ("
  contains "$name: the variable that moves it" "$out" "$var=<free port> make demo"
  check "$name: started nothing" "$(grep -c 'PostgreSQL 15' <<<"$out")" 0
  after_failure "$name" "$out" "$occ" "$port"
  kill "$occ"
  wait "$occ" 2>/dev/null || true
done

# 2. Taken after the check, just before its process starts. The listener is
# armed when the line that precedes that start appears.
while read -r spec step trigger; do
  var=TRIPWIRE_DEMO_$spec
  port=${!var}
  occ=$(occupy "$port")
  : >"$tmp/out"
  "$demo" >>"$tmp/out" 2>&1 &
  run=$!
  for _ in $(seq 6000); do grep -qF -- "$trigger" "$tmp/out" && break; sleep 0.05; done
  arm "$port"
  if [ "$spec" = OTLP_PORT ]; then
    # A second run while this one builds: it says so and leaves the first alone.
    set +e
    second=$("$demo" 2>&1)
    rc=$?
    set -e
    check "second run: exit code" "$rc" 1
    contains "second run: says so" "$second" "another make demo is starting in this checkout"
  fi
  set +e
  wait "$run"
  rc=$?
  set -e
  out=$(cat "$tmp/out")
  name="taken after the check: $var"
  check "$name: exit code" "$rc" 1
  check "$name: failed at step" "$(failed_step "$out")" "$step"
  contains "$name: port and holder" "$out" "port $port is held by pid $occ ("
  contains "$name: not ours" "$out" "this demo started"
  contains "$name: the variable that moves it" "$out" "$var=<free port> make demo"
  contains "$name: says it cleaned up" "$out" "stopped what this run had started"
  after_failure "$name" "$out" "$occ" "$port"
  kill "$occ"
  wait "$occ" 2>/dev/null || true
done <<'EOF'
PGPORT 2 [2] PostgreSQL 15
OTLP_PORT 5 [3] Building
COLLECTOR_HEALTH_PORT 5 [3] Building
METRICS_PORT 5 [3] Building
SERVICE_PORT 6 [5] Starting tripwire-collector
HONEYPORT 6 [5] Starting tripwire-collector
EOF

echo "demo_ports: $pass passed, $failed failed"
[ "$failed" = 0 ]
