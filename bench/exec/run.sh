#!/bin/sh
# Exec-storm benchmark for the process watcher (issue 4). Needs root.
#
#   bench/exec/run.sh [SECONDS] [WORKERS] [EVERY]
#
# Four storms of SECONDS each (default 30) with WORKERS parallel fork+exec
# loops (default 4), one exec in EVERY (default 500) running the watched
# binary tw-storm: (1) no watcher, (2) the process watcher (MECHANISM, default
# ebpf) with a name rule for tw-storm, (3) auditd with an execve audit rule,
# (4) no watcher again. It reports the rates, each slowdown against the mean
# of the two baselines, whether every watched exec was caught, kernel-side
# losses and the watcher's CPU. auditd is started and its rule removed again
# afterwards; auditd must be installed (apt-get install auditd).
set -eu
SECS=${1:-30}
WORKERS=${2:-4}
EVERY=${3:-500}
MECHANISM=${MECHANISM:-ebpf}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
W=$(mktemp -d /tmp/tw-bench-exec.XXXXXX)
cleanup() {
	[ -n "${WPID:-}" ] && kill "$WPID" 2>/dev/null || true
	if [ -n "${AUDITD_STARTED:-}" ]; then
		auditctl -D >/dev/null 2>&1 || true
		auditctl -e 0 >/dev/null 2>&1 || true
		[ -f /var/run/auditd.pid ] && kill "$(cat /var/run/auditd.pid)" 2>/dev/null || true
	fi
	rm -rf "$W"
}
trap cleanup EXIT INT TERM

cd "$ROOT"
go build -o "$W/storm" ./bench/exec/storm
go build -o "$W/stormwatch" "${STORMWATCH_PKG:-./bench/exec/stormwatch}"
cp /bin/true "$W/tw-storm"

storm() { "$W/storm" -d "${SECS}s" -workers "$WORKERS" -every "$EVERY" -watched "$W/tw-storm" -pids "$W/$1.pids"; }
rate() { sed -n 's/.*rate=\([0-9]*\).*/\1/p' "$W/$1.out"; }

echo "== 1/4 baseline: no watcher"
storm base1 | tee "$W/base1.out"

echo "== 2/4 tripwire process watcher ($MECHANISM)"
"$W/stormwatch" -name tw-storm -mechanism "$MECHANISM" -pids "$W/caught.pids" > "$W/watch.out" 2>&1 &
WPID=$!
i=0; until grep -q ready "$W/watch.out" 2>/dev/null; do i=$((i+1)); [ $i -gt 300 ] && { cat "$W/watch.out"; exit 1; }; sleep 0.1; done
storm tw | tee "$W/tw.out"
kill -TERM "$WPID"; wait "$WPID" || true; WPID=
cat "$W/watch.out"

echo "== 3/4 auditd with an execve audit rule"
if ! command -v auditd >/dev/null; then echo "auditd not installed: apt-get install auditd" >&2; exit 1; fi
auditd; AUDITD_STARTED=1
auditctl -e 1 >/dev/null
auditctl -a always,exit -F arch=b64 -S execve -F key=twbench >/dev/null
storm audit | tee "$W/audit.out"
echo "audit records for the storm: $(ausearch -k twbench --raw 2>/dev/null | grep -c 'type=SYSCALL' || true)"
auditctl -D >/dev/null; auditctl -e 0 >/dev/null
kill "$(cat /var/run/auditd.pid)"; AUDITD_STARTED=

echo "== 4/4 baseline again"
storm base2 | tee "$W/base2.out"

B1=$(rate base1); B2=$(rate base2); T=$(rate tw); A=$(rate audit)
sort "$W/tw.pids" > "$W/want"; sort "$W/caught.pids" > "$W/got"
MISSED=$(comm -23 "$W/want" "$W/got" | grep -c . || true)
EXTRA=$(comm -13 "$W/want" "$W/got" | grep -c . || true)
awk -v b1="$B1" -v b2="$B2" -v t="$T" -v a="$A" -v want="$(grep -c . "$W/want")" -v missed="$MISSED" -v extra="$EXTRA" 'BEGIN {
	b = (b1 + b2) / 2
	ts = 100 * (b - t) / b; as = 100 * (b - a) / b
	printf "\nRESULT baseline_rate=%.0f/s (%s, %s) tripwire_rate=%.0f/s slowdown=%.1f%% auditd_rate=%.0f/s slowdown=%.1f%%\n", b, b1, b2, t, ts, a, as
	printf "RESULT watched_execs=%d missed=%d unexpected=%d\n", want, missed, extra
	if (as > 0) printf "RESULT tripwire_slowdown / auditd_slowdown = %.2f\n", ts / as
}'
grep -o 'cpu_percent_of_core=[0-9.]*\|ringbuf_lost:[0-9]*\|exec_seen:[0-9]*' "$W/watch.out" | sed 's/^/RESULT /'
