#!/bin/sh
# caps.sh runs capprobe as user nobody with each capability set in turn and
# prints which watcher mechanisms work: the evidence for docs/capabilities.md.
# Needs root and setpriv (util-linux).
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
W=$(mktemp -d /tmp/tw-caps.XXXXXX)
chmod 755 "$W"
sleep 600 & SP=$!   # a root process for the /proc checks
trap 'kill $SP 2>/dev/null; rm -rf "$W"' EXIT INT TERM
cd "$ROOT" && go build -o "$W/capprobe" ./bench/exec/capprobe
for caps in "" +bpf +perfmon +bpf,+perfmon +sys_admin +net_admin +sys_ptrace +dac_read_search +sys_ptrace,+dac_read_search +net_bind_service; do
	echo "== nobody with [${caps:-no capabilities}]"
	if [ -z "$caps" ]; then
		setpriv --reuid 65534 --regid 65534 --clear-groups --inh-caps=-all "$W/capprobe" "$SP"
	else
		setpriv --reuid 65534 --regid 65534 --clear-groups --inh-caps "$caps" --ambient-caps "$caps" "$W/capprobe" "$SP"
	fi
done
