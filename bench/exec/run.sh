#!/bin/sh
# Exec-storm benchmark for the process watcher (issue 4). Needs root.
#
#   bench/exec/run.sh [SECONDS] [WORKERS] [EVERY] [ROUNDS]
#
# Each round runs three storms of SECONDS each (default 30) with WORKERS
# parallel fork+exec loops (default 4), one exec in EVERY (default 500)
# running the watched binary tw-storm: no watcher, the TripWire process
# watcher (MECHANISM, default ebpf) with a name rule for tw-storm, and auditd
# with an execve audit rule. A last no-watcher storm closes the run. Rounds
# (default 2) interleave the three so that the load of a shared machine falls
# on all of them alike. Reported: mean rates, each slowdown against the mean
# baseline, whether every watched exec was caught, kernel-side ring-buffer
# losses, the kernel's own run time of the exec program per exec
# (kernel.bpf_stats_enabled), and the watcher's CPU while it ran.
# auditd must be installed (apt-get install auditd); it is started for its
# storms and stopped, with its rule removed, afterwards.
set -eu
SECS=${1:-30}
WORKERS=${2:-4}
EVERY=${3:-500}
ROUNDS=${4:-2}
MECHANISM=${MECHANISM:-ebpf}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
W=$(mktemp -d /tmp/tw-bench-exec.XXXXXX)
STATS_WAS=$(sysctl -n kernel.bpf_stats_enabled 2>/dev/null || echo 0)
cleanup() {
	[ -n "${WPID:-}" ] && kill "$WPID" 2>/dev/null || true
	if [ -n "${AUDITD_STARTED:-}" ]; then
		auditctl -D >/dev/null 2>&1 || true
		auditctl -e 0 >/dev/null 2>&1 || true
		[ -f /var/run/auditd.pid ] && kill "$(cat /var/run/auditd.pid)" 2>/dev/null || true
	fi
	sysctl -qw kernel.bpf_stats_enabled="$STATS_WAS" 2>/dev/null || true
	rm -rf "$W"
}
trap cleanup EXIT INT TERM
command -v auditd >/dev/null || { echo "auditd not installed: apt-get install auditd" >&2; exit 1; }

cd "$ROOT"
go build -o "$W/storm" ./bench/exec/storm
go build -o "$W/stormwatch" "${STORMWATCH_PKG:-./bench/exec/stormwatch}"
cp /bin/true "$W/tw-storm"
: > "$W/want"; : > "$W/got"; : > "$W/rates"; : > "$W/bpfstats"

storm() { # storm KIND NAME
	"$W/storm" -d "${SECS}s" -workers "$WORKERS" -every "$EVERY" -watched "$W/tw-storm" -pids "$W/$2.pids" > "$W/$2.out"
	echo "$1 $(sed -n 's/.*rate=\([0-9]*\).*/\1/p' "$W/$2.out")" >> "$W/rates"
	echo "   $1: $(cat "$W/$2.out")"
}

r=1
while [ $r -le "$ROUNDS" ]; do
	echo "== round $r/$ROUNDS"
	storm base "base$r"

	# Kernel-side cost per exec, measured by the kernel itself: immune to
	# the noise that makes rate differences of a few % unreliable here.
	sysctl -qw kernel.bpf_stats_enabled=1 2>/dev/null || true
	"$W/stormwatch" -name tw-storm -mechanism "$MECHANISM" -pids "$W/caught$r.pids" > "$W/watch$r.out" 2>&1 &
	WPID=$!
	i=0; until grep -q ready "$W/watch$r.out" 2>/dev/null; do i=$((i+1)); [ $i -gt 300 ] && { cat "$W/watch$r.out"; exit 1; }; sleep 0.1; done
	storm tripwire "tw$r"
	bpftool prog show name tw_exec 2>/dev/null | sed -n 's/.*run_time_ns \([0-9]*\) run_cnt \([0-9]*\).*/\1 \2/p' >> "$W/bpfstats" || true
	sysctl -qw kernel.bpf_stats_enabled="$STATS_WAS" 2>/dev/null || true
	kill -TERM "$WPID"; wait "$WPID" || true; WPID=
	echo "   watcher: $(cat "$W/watch$r.out" | grep caught)"
	grep . "$W/tw$r.pids" >> "$W/want" || true
	grep . "$W/caught$r.pids" >> "$W/got" || true

	auditd; AUDITD_STARTED=1
	auditctl -e 1 >/dev/null
	auditctl -a always,exit -F arch=b64 -S execve -F key=twbench >/dev/null
	storm auditd "audit$r"
	auditctl -D >/dev/null; auditctl -e 0 >/dev/null
	kill "$(cat /var/run/auditd.pid)"; AUDITD_STARTED=
	while pgrep -x auditd >/dev/null; do sleep 0.1; done
	r=$((r+1))
done
echo "== closing baseline"
storm base base-last

sort -o "$W/want" "$W/want"; sort -o "$W/got" "$W/got"
MISSED=$(comm -23 "$W/want" "$W/got" | grep -c . || true)
EXTRA=$(comm -13 "$W/want" "$W/got" | grep -c . || true)
echo
awk -v want="$(grep -c . "$W/want")" -v missed="$MISSED" -v extra="$EXTRA" '
	{ sum[$1] += $2; n[$1]++; all[$1] = all[$1] " " $2 }
	END {
		b = sum["base"] / n["base"]; t = sum["tripwire"] / n["tripwire"]; a = sum["auditd"] / n["auditd"]
		ts = 100 * (b - t) / b; as = 100 * (b - a) / b
		printf "RESULT baseline=%.0f execs/s (runs:%s)\n", b, all["base"]
		printf "RESULT tripwire=%.0f execs/s (runs:%s) slowdown=%.1f%%\n", t, all["tripwire"], ts
		printf "RESULT auditd=%.0f execs/s (runs:%s) slowdown=%.1f%%\n", a, all["auditd"], as
		if (as > 0) printf "RESULT tripwire_slowdown/auditd_slowdown=%.2f\n", ts / as
		printf "RESULT watched_execs=%d caught_missed=%d unexpected=%d\n", want, missed, extra
	}' "$W/rates"
awk '{ ns += $1; cnt += $2 } END { if (cnt > 0) printf "RESULT bpf tw_exec: %d runs, %.0f ns per exec on average\n", cnt, ns / cnt }' "$W/bpfstats"
for f in "$W"/watch*.out; do
	echo "RESULT watcher $(grep -o 'cpu_percent_of_core=[0-9.]*\|ringbuf_lost:[0-9]*\|exec_seen:[0-9]*\|lost=map\[[^]]*\]' "$f" | tr '\n' ' ')"
done
