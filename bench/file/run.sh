#!/bin/sh
# File tripwire benchmarks with the real agent binary on its default
# mechanism (needs root; auditd installed for the comparison: it is started
# for BenchmarkGetpwnam and stopped after). Each prints one line of figures:
#   getpwnam("root") loop: no agent vs agent vs auditd -w /etc/passwd -p r
#   vs an empty program on the open system calls' exit tracepoints, and
#   the agent's eBPF cost per system call and per open (BPF run-time
#   statistics),
#   the slowest open of a watched file while the agent is SIGSTOPped 10 s,
#   2,500 short-lived cats: trips attributed in full,
#   100,000 reads of a watched file: chained count sum and losses,
#   idle RSS/CPU with a recursive /etc rule and one rule of each kind.
# TRIPWIRE_BENCH_AGENT=/path/to/tripwire runs another build of the agent.
# Takes about 5 minutes.
set -eu
cd "$(dirname "$0")/../.."
exec go test -count=1 -run '^$' -bench "${1:-.}" -benchtime 1x -timeout 30m ./bench/file/
