#!/bin/sh
# `make bench`: every benchmark, each printing its own figures. Needs root
# (fanotify, eBPF) and, for the exec storm's comparison, auditd
# (apt-get install auditd). Takes about 15 minutes; pass a section name to run
# one: chain, event, agent, file, exec, shipper, exporter, ingest, opamp, search,
# plugin, install.
set -eu
cd "$(dirname "$0")/.."
want=${1:-all}
section() { [ "$want" = all ] || [ "$want" = "$1" ]; }

if section chain; then
  echo "== audit chain: verify throughput next to bare SHA-256 of the same lines; append with fsync per batch"
  go test -run '^$' -bench 'BenchmarkVerify$' -benchtime 1x -v ./internal/auditchain | grep -E '^Benchmark.*-[0-9]|bench_test'
  go test -run '^$' -bench BenchmarkAppend -benchtime 3x ./internal/auditchain | grep -E '^Benchmark'
  echo "== central audit entries: the plugin's re-verification from PostgreSQL, next to SHA-256 and a bare read of the same rows"
  (cd grafana-plugin && go test -run '^$' -bench BenchmarkVerifyChain -benchtime 1x -v ./pkg/plugin | grep -E '^Benchmark.*-[0-9]|verify_test')
fi
if section event; then
  echo "== event: OTLP round trip, canonical encoding"
  go test -run '^$' -bench . ./internal/event
fi
if section agent; then
  echo "== agent: idle RSS/CPU, read → spool latency, burst"
  ./bench/agent/run.sh
fi
if section file; then
  echo "== file: getpwnam vs auditd, stopped agent, short-lived cat, 100,000 reads counted, idle"
  ./bench/file/run.sh
fi
if section exec; then
  echo "== exec storm: eBPF process watcher vs no watcher vs auditd"
  ./bench/exec/run.sh 30 4 500 2
fi
if section shipper; then
  echo "== shipper: spool → collector over mTLS"
  go test -run '^$' -bench 'BenchmarkShip$' -benchtime 20000x ./agent/shipper
  go test -run '^$' -bench BenchmarkShipLatency -benchtime 2000x ./agent/shipper
fi
if section exporter; then
  echo "== exporter: events/s into PostgreSQL vs raw COPY"
  go test -run '^$' -bench . -benchtime 3x ./tripwireexporter
fi
if section ingest; then
  echo "== delivery: trip → row latency at 200/s; burst (50 agents x 500-event batches) vs raw COPY of the same rows; steady 15,000 events/s from 50 agents in <= 50-event requests for 60 s (event → row p50/p99, backlog drain); 1,000 agents"
  go test -run '^$' -bench . -benchtime 1x -timeout 30m -v ./collector/ | grep -E 'Benchmark|bench_test'
fi
if section opamp; then
  echo "== central rules: save in PostgreSQL → applied on 100 simulated OpAMP agents + 1 real agent (p50/p99/max), next to save → NOTIFY"
  go test -run '^$' -bench BenchmarkRuleRollout -benchtime 20x -timeout 20m -v ./collector/ | grep -E '^Benchmark.*-[0-9]|opamp_test'
fi
if section search; then
  echo "== search: what a free-text index costs inserts (none, migration 0012's words, tsvector expression, trigram) and the exporter (with and without it, vs raw COPY)"
  ./bench/search/run.sh
  echo "== search: free-text p50/p95 over 5,000,000 alerts by term (rare, common, everywhere, phrase, none) and range (1 h, 24 h, 7 d, 30 d), alone and while inserting at 15,000 rows/s"
  (cd grafana-plugin && go test -run '^$' -bench 'BenchmarkAlertsAPI/text|BenchmarkSearchUnderIngest' -benchtime 200x -timeout 60m -v ./pkg/plugin | grep -E '^Benchmark.*-[0-9]|bench_test.go:[0-9]+: (free|seeded 5|q=)')
fi
if section install; then
  echo "== install: dpkg -i of the package → the unit's ExecStart as its user with its capabilities → first heartbeat in PostgreSQL"
  if ! command -v dpkg >/dev/null; then
    echo "dpkg is not available on this machine: install time not measured"
  else
    arch=$(go env GOARCH)
    ls dist/tripwire_*_"$arch".deb >/dev/null 2>&1 || make packages VERSION=0.0.0-bench
    go test -count=1 -run '^$' -bench . -benchtime 1x -timeout 20m ./bench/install/ | grep -E '^(install|Benchmark|--- SKIP)|bench/install|SKIP'
  fi
fi
if section plugin; then
  echo "== plugin: /api/v1/alerts over 5,000,000 alerts by filter, triage filters, bulk triage by id and by key; INSERT → stream frame; rule set save"
  (cd grafana-plugin && go test -run '^$' -bench 'BenchmarkAlertsAPI|BenchmarkTriageFilters|BenchmarkBulkTriage|BenchmarkStreamLatency|BenchmarkRuleSetSave' -benchtime 200x -timeout 60m -v ./pkg/plugin | grep -E '^Benchmark.*-[0-9]|_test.go:[0-9]+: ')
fi
