#!/usr/bin/env bash
# deps.sh installs what `make test` (deps.sh test) or `make demo` (deps.sh
# demo) needs when it is missing, and says what it installs. Debian packages
# come from apt-get as root; where that is not possible (not root, no
# apt-get) it names each missing package and stops. Node 22 for the plugin
# comes from deploy/node.sh; ocb and mage are installed by `go install` in
# collector/build.sh and the Makefile.
set -euo pipefail
cd "$(dirname "$0")/.."

pg_bin=${PGTEST_BINDIR:-/usr/lib/postgresql/15/bin}

# One line per need: how to tell it is there | Debian package | what needs it.
test_needs=(
  "command -v clang|clang|make bpf-check compiles the eBPF programs"
  "command -v llvm-strip|llvm|make bpf-check strips the eBPF objects"
  "test -x $pg_bin/initdb|postgresql|the tests start PostgreSQL 15 clusters"
  "command -v docker-compose|docker-compose|compose/ validates the compose file"
  "command -v npm|npm|the Grafana plugin's packages and Node 22"
)
demo_needs=(
  "test -x $pg_bin/initdb|postgresql|the demo's PostgreSQL 15 cluster"
  "command -v psql|postgresql-client|the demo reads its alerts with psql"
  "command -v nc|netcat-openbsd|the demo trips the honeyport with nc"
  "command -v curl|curl|the demo's health checks"
  "command -v ss|iproute2|the demo's port checks"
  "command -v python3|python3|the demo's observed-port service"
)

case "${1:-}" in
  test) needs=("${test_needs[@]}") ;;
  demo) needs=("${demo_needs[@]}") ;;
  *) echo "usage: deploy/deps.sh test|demo" >&2; exit 2 ;;
esac

missing=()
for need in "${needs[@]}"; do
  IFS='|' read -r probe pkg why <<<"$need"
  if ! eval "$probe" >/dev/null 2>&1; then
    missing+=("$pkg")
    echo "missing: Debian package $pkg ($why)" >&2
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "cannot install them here (needs root and apt-get): install ${missing[*]}, then run make $1 again" >&2
    exit 1
  fi
  echo "installing ${missing[*]} with apt-get" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  for pkg in "${missing[@]}"; do
    # Installing postgresql starts the distribution's own cluster on 5432;
    # neither the tests nor the demo use it.
    if [ "$pkg" = postgresql ] && command -v pg_ctlcluster >/dev/null; then
      pg_ctlcluster 15 main stop 2>/dev/null || true
    fi
  done
fi

if [ "$1" = test ]; then
  deploy/node.sh bin >/dev/null
fi
