#!/usr/bin/env bash
# Tests deploy/deps.sh where it cannot install: with clang and apt-get taken
# off PATH (as root, and as an unprivileged user with clang gone), it must
# name exactly the missing package, install nothing and stop with exit 1.
set -euo pipefail
cd "$(dirname "$0")/../.."
deps_sh=$PWD/deploy/deps.sh
pass=0 failed=0
check() { # NAME GOT WANT
  if [ "$2" = "$3" ]; then pass=$((pass + 1)); else failed=$((failed + 1)); echo "FAIL $1: got '$2', want '$3'"; fi
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
# A PATH with every system command but those in $* (system dirs only: the
# unprivileged user cannot read root's own, e.g. /root/.pyenv).
path_without() {
  local dir=$tmp/bin-$(echo "$*" | tr ' ' _) d
  mkdir -p "$dir"
  # The first directory's command wins, as on PATH: ln skips names taken.
  for d in /usr/local/go/bin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
    [ -d "$d" ] && ln -s "$d"/* "$dir"/ 2>/dev/null || true
  done
  for d in "$@"; do rm -f "$dir/$d"; done
  echo "$dir"
}

command -v clang >/dev/null || { echo "deps_test.sh: needs clang installed (deploy/deps.sh test installs it)"; exit 1; }

# Root without apt-get.
p=$(path_without clang apt-get)
set +e
out=$(PATH=$p "$deps_sh" test 2>&1)
rc=$?
set -e
check "root without apt-get: exit code" "$rc" 1
check "root without apt-get: what is missing" "$(echo "$out" | grep '^missing:')" "missing: Debian package clang (make bpf-check compiles the eBPF programs)"
check "root without apt-get: what to do" "$(echo "$out" | tail -1)" "cannot install them here (needs root and apt-get): install clang, then run make test again"

# An unprivileged user, apt-get present. The user needs to read the checkout.
if [ "$(id -u)" = 0 ] && runuser -u nobody -- test -r "$deps_sh"; then
  p=$(path_without clang nc)
  set +e
  out=$(runuser -u nobody -- env PATH="$p" "$deps_sh" demo 2>&1)
  rc=$?
  set -e
  check "non-root: exit code" "$rc" 1
  check "non-root: what is missing" "$(echo "$out" | grep '^missing:')" "missing: Debian package netcat-openbsd (the demo trips the honeyport with nc)"
  check "non-root: what to do" "$(echo "$out" | tail -1)" "cannot install them here (needs root and apt-get): install netcat-openbsd, then run make demo again"
else
  echo "deps_test.sh: skipping the unprivileged case (not root, or nobody cannot read $deps_sh)"
fi

echo "deps.sh: $pass passed, $failed failed"
[ "$failed" = 0 ]
