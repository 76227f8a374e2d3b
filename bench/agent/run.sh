#!/bin/sh
# Agent benchmarks on the real kernel (needs root for fanotify). Each prints
# one line of figures:
#   idle RSS and CPU over 60 s with 3 file rules on 50 paths (the release binary),
#   read(2) → spool commit latency p50/p99 at 1,000 reads/s for 10 s, split
#   by stage (watcher, queue, audit-log sync, spool commit), beside the disk's
#   own group-committed write+fdatasync at the same rate (the floor),
#   a 20,000 reads/s burst for 10 s: trips, coalesced, spooled, dropped, shed,
#   500 honeyport connections/s for 10 s: connections made vs chained counts.
# Takes about 2 minutes after the first build.
set -eu
cd "$(dirname "$0")/../.."
exec go test -count=1 -run '^$' -bench "${1:-.}" -benchtime 1x -timeout 30m ./bench/agent/
